// Package charts embeds the weft Helm chart (charts/weft) in the binaries,
// so that `weft install` renders the very files `helm install` reads.
package charts

import "embed"

// FS holds the chart under the directory "weft" (Chart.yaml, values.yaml,
// crds/, templates/; "all:" keeps _helpers.tpl).
//
//go:embed all:weft
var FS embed.FS
