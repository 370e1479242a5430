package config

import (
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Changes says what one Store.Apply changed.
type Changes struct {
	// Added, Updated and Removed are the keys whose object appeared,
	// changed version or disappeared, each sorted.
	Added, Updated, Removed []Key
	// Kept are the rejected objects whose previous good version stays in
	// force (their errors are in the load result), sorted.
	Kept []Key
}

// Empty reports whether nothing was added, updated or removed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Updated) == 0 && len(c.Removed) == 0
}

// Store holds the objects in force: the last good version of every object.
// All methods are safe for concurrent use; the objects it returns are
// immutable and shared.
type Store struct {
	mu      sync.RWMutex
	objects map[Key]*Object
	errors  []*Error
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{objects: map[Key]*Object{}}
}

// Apply makes a load result the configuration in force, as one atomic
// change (readers see the whole previous set or the whole new one):
//
//   - every valid object replaces the stored one (a new version is
//     Updated; the same version is no change);
//   - a rejected object keeps its previous good version (Kept), or stays
//     absent if it never had one;
//   - a stored object the load did not find is Removed, unless the file it
//     came from is incomplete in the result (then it is kept: a syntax
//     error while a file is being edited must not delete what it held).
//
// The result's errors become the store's current errors.
func (s *Store) Apply(r *LoadResult) Changes {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[Key]*Object, len(r.Objects))
	var ch Changes
	for _, obj := range r.Objects {
		k := obj.Key()
		next[k] = obj
		switch prev, ok := s.objects[k]; {
		case !ok:
			ch.Added = append(ch.Added, k)
		case prev.Version != obj.Version:
			ch.Updated = append(ch.Updated, k)
		}
	}
	for _, k := range r.Rejected {
		if prev, ok := s.objects[k]; ok {
			next[k] = prev
			ch.Kept = append(ch.Kept, k)
		}
	}
	for k, prev := range s.objects {
		if _, ok := next[k]; ok {
			continue
		}
		if underAny(prev.Source.File, r.Incomplete) {
			next[k] = prev
			ch.Kept = append(ch.Kept, k)
			continue
		}
		ch.Removed = append(ch.Removed, k)
	}
	s.objects = next
	s.errors = append([]*Error(nil), r.Errors...)
	for _, keys := range [][]Key{ch.Added, ch.Updated, ch.Removed, ch.Kept} {
		sortKeys(keys)
	}
	return ch
}

// underAny reports whether file is one of paths or below one of them.
func underAny(file string, paths []string) bool {
	for _, p := range paths {
		if file == p || strings.HasPrefix(file, strings.TrimSuffix(p, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// List returns the objects in force, sorted by kind, namespace and name.
// The slice is the caller's; the objects are shared and must not be
// modified.
func (s *Store) List() []*Object {
	s.mu.RLock()
	out := make([]*Object, 0, len(s.objects))
	for _, obj := range s.objects {
		out = append(out, obj)
	}
	s.mu.RUnlock()
	sortObjects(out)
	return out
}

// Get returns the object in force for a key.
func (s *Store) Get(k Key) (*Object, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	obj, ok := s.objects[k]
	return obj, ok
}

// Errors returns the problems of the last Apply (errors and warnings).
func (s *Store) Errors() []*Error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*Error(nil), s.errors...)
}

// sortKeys sorts keys by kind, namespace and name.
func sortKeys(keys []Key) {
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
}
