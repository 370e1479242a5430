package translate

// Temporary stand-ins so that dependent packages compile while translation
// is written; the translate helper replaces this file.

import (
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

type cache struct{}

func newCache() *cache { return &cache{} }

func (t *Translator) generate(s *model.Snapshot, p *model.Proxy) *Resources {
	return &Resources{Versions: map[string]string{}}
}

func (t *Translator) warnings(s *model.Snapshot) []*config.Error { return nil }
