package healthcheck

import (
	"bytes"
	"time"

	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// tcpProber connects (through the host's transport socket), writes Send
// and waits until every Receive payload has arrived, in order, anywhere in
// what the host sent (Envoy's TCP health checker "fuzzy" match). With
// nothing to receive, a completed connect passes. Every check uses a new
// connection: reuse_connection is not applied to TCP checks.
type tcpProber struct {
	cfg *Config
	po  pool.Options
}

func (p *tcpProber) probe(deadline time.Time) result {
	c, release, err := pool.DialTCP(&p.po, deadline)
	if err != nil {
		return failedNetwork
	}
	defer release()
	defer c.Close()
	c.SetDeadline(deadline)
	if len(p.cfg.Send) > 0 {
		if _, err := c.Write(p.cfg.Send); err != nil {
			return failedNetwork
		}
	}
	if len(p.cfg.Receive) == 0 {
		return passed
	}
	var got []byte
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if matchesInOrder(got, p.cfg.Receive) {
			return passed
		}
		if err != nil || len(got) > maxBody {
			return failedNetwork
		}
	}
}

// matchesInOrder reports whether every payload occurs in b, each after the
// previous one.
func matchesInOrder(b []byte, payloads [][]byte) bool {
	for _, p := range payloads {
		i := bytes.Index(b, p)
		if i < 0 {
			return false
		}
		b = b[i+len(p):]
	}
	return true
}

func (p *tcpProber) close() {}
