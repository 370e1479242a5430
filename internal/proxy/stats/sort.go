package stats

import "slices"

func sortMetrics(ms []*Metric) {
	slices.SortFunc(ms, func(a, b *Metric) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
}
