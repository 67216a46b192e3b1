package eureka

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// Action types of a delta (com.netflix.appinfo.InstanceInfo.ActionType).
const (
	ActionAdded    = "ADDED"
	ActionModified = "MODIFIED"
	ActionDeleted  = "DELETED"
)

// apps is an /apps or /apps/delta answer, whichever encoding it came in.
type apps struct {
	// Missing is an answer without an applications element (or with no body at all): for a
	// delta, Netflix's client reads it as "no delta available" and fetches everything.
	Missing  bool
	HashCode string
	Apps     []app
}

type app struct {
	Name      string
	Instances []instance
}

// instance is what the adapter keeps of a Eureka InstanceInfo. It is compared whole (==) to
// tell a MODIFIED instance that changed nothing the bridge uses, so it holds only comparable
// fields and the metadata flattened into a sorted string.
type instance struct {
	ID, App, IPAddr, HostName     string
	Status, OverriddenStatus      string
	VIPAddress                    string
	Port, SecurePort              uint32
	PortEnabled, SecurePortEnable bool
	DataCenter                    string // dataCenterInfo name: MyOwn, Amazon
	AvailabilityZone              string // dataCenterInfo metadata availability-zone (Amazon)
	Metadata                      string // metadata as encodeMetadata renders it
	Action                        string
}

// decode parses an answer by its content type, sniffing the first byte when the type says
// neither JSON nor XML.
func decode(contentType string, body []byte) (apps, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return apps{Missing: true}, nil
	}
	ct := strings.ToLower(contentType)
	switch {
	case strings.Contains(ct, "json"):
		return decodeJSON(trimmed)
	case strings.Contains(ct, "xml"):
		return decodeXML(trimmed)
	case trimmed[0] == '{':
		return decodeJSON(trimmed)
	case trimmed[0] == '<':
		return decodeXML(trimmed)
	}
	return apps{}, fmt.Errorf("answer is neither JSON nor XML (content type %q)", contentType)
}

// JSON. Eureka servers produce two shapes: Jackson's (port {"$": 8080, "@enabled": true}) and the
// older XStream/Jettison one (numbers and booleans as strings, and a single object where a list
// of one is expected). Every field below accepts both.

type jsonRoot struct {
	Applications *jsonApps `json:"applications"`
}

type jsonApps struct {
	HashCode    flexString      `json:"apps__hashcode"`
	Application listOf[jsonApp] `json:"application"`
}

type jsonApp struct {
	Name     flexString           `json:"name"`
	Instance listOf[jsonInstance] `json:"instance"`
}

type jsonInstance struct {
	InstanceID       flexString `json:"instanceId"`
	App              flexString `json:"app"`
	IPAddr           flexString `json:"ipAddr"`
	HostName         flexString `json:"hostName"`
	Status           flexString `json:"status"`
	OverriddenStatus flexString `json:"overriddenStatus"`
	// Older servers spell it in lower case.
	OverriddenStatusLower flexString `json:"overriddenstatus"`
	VIPAddress            flexString `json:"vipAddress"`
	Port                  *jsonPort  `json:"port"`
	SecurePort            *jsonPort  `json:"securePort"`
	DataCenterInfo        struct {
		Name     flexString            `json:"name"`
		Metadata map[string]flexString `json:"metadata"`
	} `json:"dataCenterInfo"`
	Metadata   map[string]flexString `json:"metadata"`
	ActionType flexString            `json:"actionType"`
}

type jsonPort struct {
	Number  flexString  `json:"$"`
	Enabled *flexString `json:"@enabled"`
}

// UnmarshalJSON also takes a bare number: some servers write "port": 8080.
func (p *jsonPort) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] != '{' {
		return json.Unmarshal(t, &p.Number)
	}
	type plain jsonPort
	return json.Unmarshal(b, (*plain)(p))
}

// flexString takes a JSON string, number, boolean or null as its text.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*s = ""
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
	case b[0] == '{' || b[0] == '[':
		// A nested value where text is expected (Jackson's {"@class": ...} markers): no text.
		*s = ""
	default:
		*s = flexString(b) // number or boolean literal, as written
	}
	return nil
}

// listOf takes a JSON list, a single object (XStream's list of one) or null.
type listOf[T any] []T

func (l *listOf[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*l = nil
		return nil
	case b[0] == '[':
		var v []T
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*l = listOf[T]{one}
	return nil
}

func decodeJSON(b []byte) (apps, error) {
	var root jsonRoot
	if err := json.Unmarshal(b, &root); err != nil {
		return apps{}, fmt.Errorf("decoding JSON applications: %w", err)
	}
	if root.Applications == nil {
		return apps{Missing: true}, nil
	}
	out := apps{HashCode: string(root.Applications.HashCode)}
	for _, ja := range root.Applications.Application {
		a := app{Name: string(ja.Name)}
		for _, ji := range ja.Instance {
			overridden := ji.OverriddenStatus
			if overridden == "" {
				overridden = ji.OverriddenStatusLower
			}
			in := instance{
				ID: string(ji.InstanceID), App: string(ji.App), IPAddr: string(ji.IPAddr), HostName: string(ji.HostName),
				Status: string(ji.Status), OverriddenStatus: string(overridden), VIPAddress: string(ji.VIPAddress),
				DataCenter:       string(ji.DataCenterInfo.Name),
				AvailabilityZone: string(ji.DataCenterInfo.Metadata["availability-zone"]),
				Action:           string(ji.ActionType),
			}
			if ji.Port != nil {
				in.Port, in.PortEnabled = portOf(string(ji.Port.Number), ji.Port.Enabled, true)
			}
			if ji.SecurePort != nil {
				in.SecurePort, in.SecurePortEnable = portOf(string(ji.SecurePort.Number), ji.SecurePort.Enabled, false)
			}
			md := make(map[string]string, len(ji.Metadata))
			for k, v := range ji.Metadata {
				md[k] = string(v)
			}
			in.Metadata = encodeMetadata(md)
			finish(&in, string(ji.DataCenterInfo.Metadata["instance-id"]))
			a.Instances = append(a.Instances, in)
		}
		out.Apps = append(out.Apps, a)
	}
	return out, nil
}

// portOf reads a port number and its enabled flag, which defaults to def (Eureka: the plain
// port is enabled unless it says otherwise, the secure port is not). An unreadable number is 0,
// which the converter rejects.
func portOf(number string, enabled *flexString, def bool) (uint32, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(number), 10, 32)
	if err != nil {
		n = 0
	}
	on := def
	if enabled != nil && *enabled != "" {
		on = strings.EqualFold(strings.TrimSpace(string(*enabled)), "true")
	}
	return uint32(n), on
}

// finish normalises what both encodings decode alike: the status as Netflix's client reads it,
// the overridden status in upper case, and the id of an instance registered without one.
func finish(in *instance, amazonID string) {
	in.Status = normStatus(in.Status)
	in.OverriddenStatus = strings.ToUpper(strings.TrimSpace(in.OverriddenStatus))
	if in.ID == "" {
		in.ID = defaultID(*in, amazonID)
	}
}

// defaultID is Netflix's InstanceInfo.getId() for an instance registered without instanceId
// (clients before 1.1.x): the Amazon instance-id, else the host name.
func defaultID(in instance, amazonID string) string {
	if in.DataCenter == "Amazon" && amazonID != "" {
		return amazonID
	}
	return in.HostName
}

// XML, as Eureka's XStream converters write it.

type xmlApps struct {
	XMLName  xml.Name `xml:"applications"`
	HashCode string   `xml:"apps__hashcode"`
	Apps     []struct {
		Name      string        `xml:"name"`
		Instances []xmlInstance `xml:"instance"`
	} `xml:"application"`
}

type xmlInstance struct {
	InstanceID       string  `xml:"instanceId"`
	App              string  `xml:"app"`
	IPAddr           string  `xml:"ipAddr"`
	HostName         string  `xml:"hostName"`
	Status           string  `xml:"status"`
	OverriddenStatus string  `xml:"overriddenstatus"`
	OverriddenCamel  string  `xml:"overriddenStatus"`
	VIPAddress       string  `xml:"vipAddress"`
	Port             xmlPort `xml:"port"`
	SecurePort       xmlPort `xml:"securePort"`
	DataCenterInfo   struct {
		Name     string  `xml:"name"`
		Metadata xmlMeta `xml:"metadata"`
	} `xml:"dataCenterInfo"`
	Metadata   xmlMeta `xml:"metadata"`
	ActionType string  `xml:"actionType"`
}

type xmlPort struct {
	Enabled *string `xml:"enabled,attr"`
	Number  string  `xml:",chardata"`
}

// xmlMeta is a metadata element: one child element per key.
type xmlMeta struct {
	Items []struct {
		XMLName xml.Name
		Value   string `xml:",chardata"`
	} `xml:",any"`
}

func (m xmlMeta) toMap() map[string]string {
	out := make(map[string]string, len(m.Items))
	for _, it := range m.Items {
		out[it.XMLName.Local] = it.Value
	}
	return out
}

func decodeXML(b []byte) (apps, error) {
	var root xmlApps
	if err := xml.Unmarshal(b, &root); err != nil {
		return apps{}, fmt.Errorf("decoding XML applications: %w", err)
	}
	out := apps{HashCode: strings.TrimSpace(root.HashCode)}
	for _, xa := range root.Apps {
		a := app{Name: strings.TrimSpace(xa.Name)}
		for _, xi := range xa.Instances {
			overridden := xi.OverriddenCamel
			if overridden == "" {
				overridden = xi.OverriddenStatus
			}
			dc := xi.DataCenterInfo.Metadata.toMap()
			in := instance{
				ID: xi.InstanceID, App: xi.App, IPAddr: xi.IPAddr, HostName: xi.HostName,
				Status: xi.Status, OverriddenStatus: overridden, VIPAddress: xi.VIPAddress,
				DataCenter: xi.DataCenterInfo.Name, AvailabilityZone: dc["availability-zone"],
				Metadata: encodeMetadata(xi.Metadata.toMap()), Action: xi.ActionType,
			}
			var en, sen *flexString
			if xi.Port.Enabled != nil {
				v := flexString(*xi.Port.Enabled)
				en = &v
			}
			if xi.SecurePort.Enabled != nil {
				v := flexString(*xi.SecurePort.Enabled)
				sen = &v
			}
			in.Port, in.PortEnabled = portOf(xi.Port.Number, en, true)
			in.SecurePort, in.SecurePortEnable = portOf(xi.SecurePort.Number, sen, false)
			finish(&in, dc["instance-id"])
			a.Instances = append(a.Instances, in)
		}
		out.Apps = append(out.Apps, a)
	}
	return out, nil
}
