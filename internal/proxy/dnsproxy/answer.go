package dnsproxy

import (
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// ttl is the answers' TTL, Istio's agent's: short, so that clients that
// cache follow address changes.
const ttl = 30

// Sizes of a UDP answer: 512 bytes without EDNS (RFC 1035), else the size
// the query's OPT record announces.
const minUDPSize = 512

// query is a parsed query: what the answer needs.
type query struct {
	header   dnsmessage.Header
	question dnsmessage.Question
	hasQ     bool
	udpSize  int
}

// parseQuery parses the header, the first question and the EDNS size. ok
// is false for bytes that are not a DNS query at all (they are dropped);
// err is set for a query that cannot be answered (FORMERR).
func parseQuery(msg []byte) (q query, ok bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return q, false, nil
	}
	q.header, q.udpSize = h, minUDPSize
	q.question, err = p.Question()
	switch {
	case errors.Is(err, dnsmessage.ErrSectionDone):
		return q, true, nil // no question
	case err != nil:
		return q, true, err
	}
	q.hasQ = true
	if p.SkipAllQuestions() != nil || p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return q, true, nil
	}
	for {
		ah, err := p.AdditionalHeader()
		if err != nil {
			return q, true, nil
		}
		if ah.Type == dnsmessage.TypeOPT && int(ah.Class) > q.udpSize {
			q.udpSize = int(ah.Class)
		}
		if p.SkipAdditional() != nil {
			return q, true, nil
		}
	}
}

// lookupResult is what the table says about a question.
type lookupResult struct {
	rec *record
	// cname, when set, is the table name the question stands for (search
	// domain expansion): the answer is a CNAME to it, then its addresses.
	cname string
}

// resolve looks the question up: found is false when the upstream must
// answer (unknown name, or a type other than A and AAAA, as Istio's agent
// forwards them).
func resolve(t *table, q dnsmessage.Question, search []string) (lookupResult, bool) {
	if q.Class != dnsmessage.ClassINET || (q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeAAAA) {
		return lookupResult{}, false
	}
	name := strings.ToLower(q.Name.String())
	if r, ok := t.lookup(name); ok {
		return lookupResult{rec: r}, true
	}
	if base, r, ok := t.searchBase(name, search); ok {
		return lookupResult{rec: r, cname: base}, true
	}
	return lookupResult{}, false
}

// answerFound builds the authoritative answer for a name of the table: its
// A or AAAA records (none, with NOERROR, when it has no address of that
// family: Istio answers so because an NXDOMAIN for AAAA makes clients such
// as curl fail the name altogether, istio/istio#31250). An answer over
// maxSize is sent truncated, without records (the client retries over
// TCP).
func answerFound(q query, res lookupResult, maxSize int) ([]byte, error) {
	b, err := buildFound(q, res, false)
	if err == nil && len(b) > maxSize {
		b, err = buildFound(q, res, true)
	}
	return b, err
}

func buildFound(q query, res lookupResult, truncated bool) ([]byte, error) {
	h := replyHeader(q.header, dnsmessage.RCodeSuccess)
	h.Authoritative, h.Truncated = true, truncated
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q.question); err != nil {
		return nil, err
	}
	if truncated {
		return b.Finish()
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	owner := q.question.Name
	if res.cname != "" {
		target, err := dnsmessage.NewName(res.cname)
		if err != nil {
			return nil, err
		}
		rh := dnsmessage.ResourceHeader{Name: owner, Class: dnsmessage.ClassINET, TTL: ttl}
		if err := b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: target}); err != nil {
			return nil, err
		}
		owner = target
	}
	if err := addAddresses(&b, owner, q.question.Type, res.rec); err != nil {
		return nil, err
	}
	return b.Finish()
}

// addAddresses adds the record's addresses of the question's type.
func addAddresses(b *dnsmessage.Builder, owner dnsmessage.Name, typ dnsmessage.Type, r *record) error {
	rh := dnsmessage.ResourceHeader{Name: owner, Class: dnsmessage.ClassINET, TTL: ttl}
	var addrs []netip.Addr
	if typ == dnsmessage.TypeA {
		addrs = r.a
	} else {
		addrs = r.aaaa
	}
	for _, a := range addrs {
		var err error
		if a.Is4() {
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		} else {
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// answerError builds an answer with rcode and the question (if any).
func answerError(q query, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), replyHeader(q.header, rcode))
	_ = b.StartQuestions()
	if q.hasQ {
		_ = b.Question(q.question)
	}
	out, err := b.Finish()
	if err != nil {
		// A question that parsed always builds; fall back to the header.
		b = dnsmessage.NewBuilder(make([]byte, 0, 12), replyHeader(q.header, rcode))
		out, _ = b.Finish()
	}
	return out
}

// replyHeader is the header of an answer to h. RecursionAvailable is set:
// the proxy resolves every name, through its upstreams (Go's resolver
// treats a non-authoritative answer without it as a lame referral).
func replyHeader(h dnsmessage.Header, rcode dnsmessage.RCode) dnsmessage.Header {
	return dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	}
}
