package nds

import (
	"bytes"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   Table
	}{
		{"empty", Table{}},
		{"one", Table{"api.example.com": {IPs: []string{"240.240.1.2", "2001:2::f0f0:102"}, Registry: "External"}}},
		{"short_names", Table{
			"hello.default.svc.cluster.local": {IPs: []string{"240.240.0.9"}, Registry: "External", Shortname: "hello", Namespace: "default"},
			"db.other.svc.cluster.local":      {IPs: []string{"10.0.0.1", "10.0.0.2"}, Registry: "Kubernetes", Shortname: "db", Namespace: "other"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, _ := tc.in.Marshal()
			if !bytes.Equal(b, again) {
				t.Fatal("two encodings of one table differ")
			}
			got, err := FromAny(&anypb.Any{TypeUrl: TypeURL, Value: b})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.in) {
				t.Fatalf("got %#v, want %#v", got, tc.in)
			}
		})
	}
}

// TestWireFormat decodes bytes written field by field with Istio's field
// numbers (nds.proto): table=1 (map entry key=1, value=2), and in
// NameInfo ips=1, registry=2, shortname=3, namespace=4.
func TestWireFormat(t *testing.T) {
	var info []byte
	info = protowire.AppendTag(info, 1, protowire.BytesType)
	info = protowire.AppendString(info, "240.240.0.1")
	info = protowire.AppendTag(info, 2, protowire.BytesType)
	info = protowire.AppendString(info, "Kubernetes")
	info = protowire.AppendTag(info, 3, protowire.BytesType)
	info = protowire.AppendString(info, "hello")
	info = protowire.AppendTag(info, 4, protowire.BytesType)
	info = protowire.AppendString(info, "default")
	var entry []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "hello.default.svc.cluster.local")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, info)
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.BytesType)
	msg = protowire.AppendBytes(msg, entry)
	got, err := Unmarshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := Table{"hello.default.svc.cluster.local": {IPs: []string{"240.240.0.1"}, Registry: "Kubernetes", Shortname: "hello", Namespace: "default"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	if b, _ := want.Marshal(); !bytes.Equal(b, msg) {
		t.Errorf("encoding %x, want %x", b, msg)
	}
}

func TestFromAnyErrors(t *testing.T) {
	if _, err := FromAny(&anypb.Any{TypeUrl: "type.googleapis.com/other"}); err == nil {
		t.Error("wrong type URL accepted")
	}
	if _, err := FromAny(&anypb.Any{TypeUrl: TypeURL, Value: []byte{0x0a, 0xff}}); err == nil {
		t.Error("truncated message accepted")
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := Table{"a.b": {IPs: []string{"1.2.3.4"}, Shortname: "a", Namespace: "b"}}.Marshal()
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Unmarshal(data)
		if err != nil {
			return
		}
		if _, err := tab.Marshal(); err != nil {
			t.Fatalf("decoded table does not encode: %v", err)
		}
	})
}
