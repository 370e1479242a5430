package dashboard

import (
	"encoding/json"
	"net/http"
	"time"
)

// sseHeartbeat keeps idle event streams open through proxies that close
// silent connections.
const sseHeartbeat = 15 * time.Second

// handleMesh serves the current View as JSON.
func (d *Dashboard) handleMesh(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	b, err := json.Marshal(d.View())
	if err != nil {
		http.Error(w, "encoding the view: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// handleEvents streams a View as a Server-Sent Event ("event: mesh") now
// and after every collector round, until the client goes away.
func (d *Dashboard) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	heartbeat := time.NewTicker(sseHeartbeat)
	defer heartbeat.Stop()
	for {
		next := d.col.changed.wait()
		if err := d.writeEvent(w, rc); err != nil {
			return
		}
		for waiting := true; waiting; {
			select {
			case <-r.Context().Done():
				return
			case <-d.done:
				return
			case <-heartbeat.C:
				if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || rc.Flush() != nil {
					return
				}
			case <-next:
				waiting = false
			}
		}
	}
}

// writeEvent writes one "mesh" event holding the current View.
func (d *Dashboard) writeEvent(w http.ResponseWriter, rc *http.ResponseController) error {
	b, err := json.Marshal(d.View())
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(b)+32)
	buf = append(buf, "event: mesh\ndata: "...)
	buf = append(buf, b...) // compact JSON has no newline
	buf = append(buf, "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return rc.Flush()
}

// noCache makes browsers revalidate the page and its assets, so a new
// weft-control's page is loaded after an upgrade.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
