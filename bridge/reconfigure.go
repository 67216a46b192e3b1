package bridge

// Reconfigure makes the bridge serve with another list of producers (a configuration reload:
// a new translator, other static resources) and pushes the last snapshot again with them at once,
// so the change does not wait for a registry event. Collections whose resources come out the same
// are not handed to the MCP server again; connected clients keep their streams either way. Before
// the first push it only takes effect for that push.
func (b *Bridge) Reconfigure(producers []Producer) {
	b.ReconfigureWith(func() []Producer { return producers })
}

// ReconfigureWith is Reconfigure with the producer list built under the push lock: a build that
// rewires producers which read each other's output (the rules engine following a new translate
// producer) is seen by no push before the list that goes with it.
func (b *Bridge) ReconfigureWith(build func() []Producer) {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	b.setProducers(build())
	if b.lastSnap != nil {
		b.push(b.lastSnap, triggerReload)
	}
}
