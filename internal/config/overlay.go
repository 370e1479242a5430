package config

import (
	"fmt"
	"os"
)

// LoadOverlay loads base and over (each a list of files or directories,
// read as LoadFiles reads them) as one configuration in which an object
// of over replaces the object of base with the same key, the way `kubectl
// apply` replaces an object; the cross-object checks then run on the
// result. `weft apply` validates files this way against the running
// mesh's directory. The problems of the replaced base objects are
// dropped; the error is for a path that does not exist.
func LoadOverlay(base, over []string) (*LoadResult, error) {
	var l loader
	if err := l.paths(base); err != nil {
		return nil, err
	}
	n := len(l.items)
	if err := l.paths(over); err != nil {
		return nil, err
	}
	replaced := map[Key]bool{}
	for _, it := range l.items[n:] {
		if it.identified() {
			replaced[it.key] = true
		}
	}
	kept := l.items[:0:0]
	for i, it := range l.items {
		if i < n && it.identified() && replaced[it.key] {
			continue
		}
		kept = append(kept, it)
	}
	l.items = kept
	return l.result(), nil
}

// paths reads files and directories as LoadFiles does.
func (l *loader) paths(paths []string) error {
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if info.IsDir() {
			l.walk(p)
		} else {
			l.file(p)
		}
	}
	return nil
}
