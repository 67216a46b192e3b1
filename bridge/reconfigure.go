package bridge

// Reconfigure makes the bridge serve with another list of producers (a configuration reload:
// a new translator, other static resources) and pushes the last snapshot again with them at once,
// so the change does not wait for a registry event. Collections whose resources come out the same
// are not handed to the MCP server again; connected clients keep their streams either way. Before
// the first push it only takes effect for that push.
func (b *Bridge) Reconfigure(producers []Producer) {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	b.setProducers(producers)
	if b.lastSnap != nil {
		b.push(b.lastSnap, triggerReload)
	}
}
