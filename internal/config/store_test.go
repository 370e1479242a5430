package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// we returns a WorkloadEntry document.
func we(name, addr string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s}\nspec: {address: %q}\n---\n", name, addr)
}

// writeFiles replaces the contents of dir with files (name -> content).
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// keyNames formats keys as "ns/name" for comparisons.
func keyNames(keys []Key) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.Namespace+"/"+k.Name)
	}
	return out
}

// addressOf returns the address of the WorkloadEntry in force.
func addressOf(s *Store, name string) string {
	obj, ok := s.Get(Key{WorkloadEntry, "default", name})
	if !ok {
		return ""
	}
	return obj.Spec.(*networking.WorkloadEntry).GetAddress()
}

// TestStoreApply: each step loads a directory and applies it; the changes
// and the objects in force are checked. The last good version of a
// rejected object stays in force; nothing is half-applied.
func TestStoreApply(t *testing.T) {
	dir := t.TempDir()
	s := NewStore()
	type want struct {
		added, updated, removed, kept []string
		addresses                     map[string]string // name -> address in force ("" absent)
		errors                        int
	}
	steps := []struct {
		name  string
		files map[string]string
		want  want
	}{
		{"initial", map[string]string{"a.yaml": we("a", "10.0.0.1") + we("b", "10.0.0.2")},
			want{added: []string{"default/a", "default/b"}, addresses: map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"}}},
		{"same content, other file: no change", map[string]string{"x.yaml": we("a", "10.0.0.1"), "y.yaml": we("b", "10.0.0.2")},
			want{addresses: map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"}}},
		{"update one", map[string]string{"x.yaml": we("a", "10.0.0.9"), "y.yaml": we("b", "10.0.0.2")},
			want{updated: []string{"default/a"}, addresses: map[string]string{"a": "10.0.0.9", "b": "10.0.0.2"}}},
		{"rejected update keeps the last good version", map[string]string{"x.yaml": we("a", "not an address!"), "y.yaml": we("b", "10.0.0.3")},
			want{updated: []string{"default/b"}, kept: []string{"default/a"}, addresses: map[string]string{"a": "10.0.0.9", "b": "10.0.0.3"}, errors: 1}},
		{"syntax error: the file's objects are kept", map[string]string{"x.yaml": we("a", "10.0.0.9"), "y.yaml": "kind: [\n"},
			want{kept: []string{"default/b"}, addresses: map[string]string{"a": "10.0.0.9", "b": "10.0.0.3"}, errors: 1}},
		{"fixed", map[string]string{"x.yaml": we("a", "10.0.0.9"), "y.yaml": we("b", "10.0.0.4")},
			want{updated: []string{"default/b"}, addresses: map[string]string{"a": "10.0.0.9", "b": "10.0.0.4"}}},
		{"removed", map[string]string{"x.yaml": we("a", "10.0.0.9")},
			want{removed: []string{"default/b"}, addresses: map[string]string{"a": "10.0.0.9", "b": ""}}},
		{"a new object that is invalid never appears", map[string]string{"x.yaml": we("a", "10.0.0.9") + we("c", "")},
			want{addresses: map[string]string{"a": "10.0.0.9", "c": ""}, errors: 1}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			writeFiles(t, dir, st.files)
			r, err := LoadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			ch := s.Apply(r)
			for _, c := range []struct {
				name      string
				got, want []string
			}{
				{"added", keyNames(ch.Added), st.want.added}, {"updated", keyNames(ch.Updated), st.want.updated},
				{"removed", keyNames(ch.Removed), st.want.removed}, {"kept", keyNames(ch.Kept), st.want.kept},
			} {
				if !slices.Equal(c.got, append([]string{}, c.want...)) {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
			for name, addr := range st.want.addresses {
				if got := addressOf(s, name); got != addr {
					t.Errorf("%s address = %q, want %q", name, got, addr)
				}
			}
			if got := len(s.Errors()); got != st.want.errors {
				t.Errorf("%d errors, want %d: %v", got, st.want.errors, s.Errors())
			}
			if ch.Empty() != (len(st.want.added)+len(st.want.updated)+len(st.want.removed) == 0) {
				t.Errorf("Empty() = %v", ch.Empty())
			}
		})
	}
}

// TestStoreListSnapshot: List is a sorted copy; concurrent readers see a
// whole set (before or after an Apply), never a mix.
func TestStoreListSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := NewStore()
	sets := []map[string]string{
		{"a.yaml": we("a", "10.0.0.1") + we("b", "10.0.0.1") + we("c", "10.0.0.1")},
		{"a.yaml": we("a", "10.0.0.2") + we("b", "10.0.0.2") + we("c", "10.0.0.2")},
	}
	results := make([]*LoadResult, len(sets))
	for i, files := range sets {
		writeFiles(t, dir, files)
		r, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		results[i] = r
	}
	s.Apply(results[0])
	list := s.List()
	list[0] = nil // the caller's copy
	if s.List()[0] == nil {
		t.Fatal("List returned the store's own slice")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				s.Apply(results[i%2])
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		objs := s.List()
		if len(objs) != 3 {
			t.Fatalf("%d objects", len(objs))
		}
		first := objs[0].Spec.(*networking.WorkloadEntry).GetAddress()
		for _, o := range objs {
			if a := o.Spec.(*networking.WorkloadEntry).GetAddress(); a != first {
				t.Fatalf("mixed snapshot: %s and %s", first, a)
			}
		}
		if objs[0].Name != "a" || objs[2].Name != "c" {
			t.Fatalf("not sorted: %s, %s", objs[0].Name, objs[2].Name)
		}
	}
	close(stop)
	wg.Wait()
}
