package bridge

import (
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Reconfigure makes the bridge serve with another translator and static resources (a
// configuration reload) and pushes the last snapshot again with them at once, so the change does
// not wait for a registry event. Collections whose resources come out the same are not handed to
// the MCP server again; connected clients keep their streams either way. A nil translator keeps
// the current one. Before the first push it only takes effect for that push.
func (b *Bridge) Reconfigure(tr *translate.Translator, static []*translate.Resource) {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	if tr != nil {
		b.tr = tr
	}
	b.static = groupByCollection(static)
	b.mu.Lock()
	b.opts.Static = static
	b.mu.Unlock()
	if b.lastSnap != nil {
		b.push(b.lastSnap)
	}
}
