package server

import (
	"sort"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// secretDump keeps the secrets in force for /config_dump's
// SecretsConfigDump, as Envoy shows them: the certificate chain and the
// validation context, the private key replaced by "[redacted]" before it
// is kept (the admin redacts sensitive fields again when it prints).
type secretDump struct {
	mu      sync.Mutex
	secrets map[string]dumpedSecret
}

type dumpedSecret struct {
	msg     *tlsv3.Secret
	updated time.Time
}

// record keeps a redacted copy of sec, accepted now.
func (d *secretDump) record(name string, sec *tlsv3.Secret) {
	c := proto.Clone(sec).(*tlsv3.Secret)
	c.Name = name
	if tc := c.GetTlsCertificate(); tc != nil {
		if tc.PrivateKey != nil {
			tc.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
		}
		tc.Password = nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.secrets == nil {
		d.secrets = map[string]dumpedSecret{}
	}
	d.secrets[name] = dumpedSecret{msg: c, updated: time.Now()}
}

// dump returns the SecretsConfigDump: every secret received over SDS (or
// ADS) as a dynamic active secret, sorted by name.
func (d *secretDump) dump() *adminv3.SecretsConfigDump {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.secrets))
	for n := range d.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	out := &adminv3.SecretsConfigDump{}
	for _, n := range names {
		s := d.secrets[n]
		out.DynamicActiveSecrets = append(out.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: n, LastUpdated: timestamppb.New(s.updated), Secret: mustAny(s.msg),
		})
	}
	return out
}
