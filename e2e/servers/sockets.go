package servers

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Socket is one IP socket a process holds, as Linux lists it in /proc/<pid>/net.
type Socket struct {
	Proto  string // "tcp", "tcp6", "udp" or "udp6"
	Local  net.IP
	Port   int
	Remote net.IP
	RPort  int
	// Listening is a TCP socket in LISTEN state, or a UDP socket with no remote peer: both take
	// what anyone sends them.
	Listening bool
}

func (s Socket) String() string {
	st := "connected to " + net.JoinHostPort(s.Remote.String(), strconv.Itoa(s.RPort))
	if s.Listening {
		st = "listening"
	}
	return fmt.Sprintf("%s %s %s", s.Proto, net.JoinHostPort(s.Local.String(), strconv.Itoa(s.Port)), st)
}

// Sockets lists every TCP and UDP socket process pid holds (0: this process): the sockets of
// its network namespace from /proc/<pid>/net/{tcp,tcp6,udp,udp6}, kept when their inode is one
// of the process's open files. Linux only.
func Sockets(pid int) ([]Socket, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	inodes, err := socketInodes(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, err
	}
	var out []Socket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		socks, err := parseProcNet(filepath.Join(dir, "net", proto), proto, inodes)
		if err != nil {
			return nil, err
		}
		out = append(out, socks...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// socketInodes reads the inodes of the "socket:[N]" links in a /proc fd directory.
func socketInodes(fdDir string) (map[string]bool, error) {
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, fmt.Errorf("listing open files: %w", err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if n, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(n, "]")] = true
		}
	}
	return inodes, nil
}

// parseProcNet reads one /proc/net/{tcp,udp}[6] table, keeping the sockets with the given inodes.
func parseProcNet(path, proto string, inodes map[string]bool) ([]Socket, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no IPv6 here
	}
	if err != nil {
		return nil, fmt.Errorf("reading sockets: %w", err)
	}
	defer f.Close()
	var out []Socket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !inodes[fields[9]] {
			continue
		}
		local, lport, err1 := parseHexAddr(fields[1])
		remote, rport, err2 := parseHexAddr(fields[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		s := Socket{Proto: proto, Local: local, Port: lport, Remote: remote, RPort: rport}
		if strings.HasPrefix(proto, "tcp") {
			s.Listening = fields[3] == "0A" // TCP_LISTEN
		} else {
			s.Listening = rport == 0
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseHexAddr decodes "0100007F:1F90" (IPv4) or the 32-digit IPv6 form; each 32-bit word of
// the address is in host (little-endian) byte order.
func parseHexAddr(s string) (net.IP, int, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("no port in %q", s)
	}
	b, err := hex.DecodeString(host)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("bad port %q", s)
	}
	return net.IP(b), int(p), nil
}
