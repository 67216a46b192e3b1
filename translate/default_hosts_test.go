package translate

// Host templates of the registry types the tests name their registries after, as registry/registries
// gives them and docs/registries.md#hosts documents them. translate knows no registry types: the
// caller passes each registry's templates in RegistryOptions.Hosts.
var (
	fileHosts      = appHosts(`{{.Name}}.file`)
	zookeeperHosts = appHosts(`{{.Name}}.zookeeper`)
	nacosHosts     = appHosts(`{{.Name}}.{{.Group | default "default-group"}}.{{.Namespace | default "public"}}.nacos`)
	consulHosts    = appHosts(`{{.Name}}{{with .Namespace}}.{{.}}{{end}}.consul`)
	eurekaHosts    = appHosts(`{{.Name}}.eureka`)
)

func appHosts(app string) HostTemplates {
	return HostTemplates{Application: app, DubboApplication: app}
}
