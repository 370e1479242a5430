package admin

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
)

// handleReady follows Envoy's ServerInfoHandler::handlerReady: the state's
// enum name and a newline; 200 when LIVE, 503 otherwise.
func (a *Admin) handleReady(url.Values) *response {
	st := a.opts.State()
	code := http.StatusOK
	if st != adminv3.ServerInfo_LIVE {
		code = http.StatusServiceUnavailable
	}
	return text(code, st.String()+"\n")
}

// handleServerInfo prints the ServerInfo proto as Envoy does: pretty JSON,
// proto field names, default-valued fields included.
func (a *Admin) handleServerInfo(url.Values) *response {
	info := &adminv3.ServerInfo{}
	if src := a.opts.ServerInfo(); src != nil {
		info = proto.Clone(src).(*adminv3.ServerInfo)
	}
	if a.opts.State != nil {
		info.State = a.opts.State()
	}
	return jsonResponse(info, true)
}

// handleQuit answers "OK\n" and then starts the caller's shutdown once
// (Envoy's ServerCmdHandler::handlerQuitQuitQuit also answers before the
// dispatcher shuts down).
func (a *Admin) handleQuit(url.Values) *response {
	resp := text(http.StatusOK, "OK\n")
	resp.after = func() {
		a.quitOnce.Do(func() {
			go func() {
				defer func() {
					if p := recover(); p != nil {
						a.log.Error("admin Quit panicked", "panic", fmt.Sprint(p))
					}
				}()
				a.opts.Quit()
			}()
		})
	}
	return resp
}

// handleHealthCheck runs f and answers "OK\n", as Envoy's
// /healthcheck/fail and /healthcheck/ok do.
func (a *Admin) handleHealthCheck(f func()) func(url.Values) *response {
	return func(url.Values) *response {
		f()
		return text(http.StatusOK, "OK\n")
	}
}

// handleHelp prints the command list in Envoy's /help format.
func (a *Admin) handleHelp(url.Values) *response {
	return text(http.StatusOK, a.helpText())
}

// helpText is Envoy's AdminImpl::getHelp: "admin commands are:" then one
// line per command in path order, POST ones marked, parameters indented.
func (a *Admin) helpText() string {
	var b strings.Builder
	b.WriteString("admin commands are:\n")
	for _, ep := range a.sorted {
		method := ""
		if ep.post {
			method = " (POST)"
		}
		fmt.Fprintf(&b, "  %s%s: %s\n", ep.path, method, ep.help)
		for _, p := range ep.params {
			fmt.Fprintf(&b, "      %s: %s\n", p.name, p.help)
		}
	}
	return b.String()
}

// handleHome is a small HTML index in the spirit of Envoy's admin home
// page: a link per read-only command and a POST button per mutating one.
func (a *Admin) handleHome(url.Values) *response {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><title>weft-proxy admin</title></head><body>\n")
	b.WriteString("<h1>weft-proxy admin</h1>\n<table>\n")
	for _, ep := range a.sorted {
		if ep.path == "/" {
			continue
		}
		path, help := html.EscapeString(ep.path), html.EscapeString(ep.help)
		if ep.post {
			fmt.Fprintf(&b, "<tr><td><form action=%q method=\"post\"><button>%s</button></form></td><td>%s</td></tr>\n", path, path, help)
		} else {
			fmt.Fprintf(&b, "<tr><td><a href=%q>%s</a></td><td>%s</td></tr>\n", path, path, help)
		}
	}
	b.WriteString("</table>\n</body></html>\n")
	return &response{code: http.StatusOK, contentType: contentHTML, body: []byte(b.String())}
}
