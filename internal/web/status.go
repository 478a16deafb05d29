package web

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"time"
)

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"age": func(row map[string]any) string { return humanAge(row["age"]) },
	"field": func(row map[string]any, key string) string {
		v, ok := row[key]
		if !ok || v == nil {
			return ""
		}
		switch x := v.(type) {
		case []string:
			s := ""
			for i, e := range x {
				if i > 0 {
					s += ", "
				}
				s += e
			}
			return s
		case []any:
			s := ""
			for i, e := range x {
				if i > 0 {
					s += ", "
				}
				s += fmt.Sprint(e)
			}
			return s
		}
		return fmt.Sprint(v)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>kubepool launcher</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d232a;background:#fbfcfd}
h1{font-size:1.4rem;margin:0 0 .2rem}
h2{font-size:1.1rem;margin:1.4rem 0 .4rem}
.sub{color:#5b6570;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;background:#fff}
th,td{text-align:left;padding:.3rem .55rem;border-bottom:1px solid #e3e7eb;white-space:nowrap}
th{background:#eef2f5;font-weight:600}
.state{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.8rem;background:#e3e7eb}
.ready,.fulfilled{background:#d3f2dc}.in-use,.pending{background:#dbe8fb}
.building,.requested{background:#fdf1cc}.failed{background:#fbd5d5}.hold{background:#eadcf8}
.used,.deleting{background:#eceff1}
.counts span{margin-right:1rem}
.empty{color:#8a949e;font-style:italic}
</style></head><body>
<h1>kubepool launcher</h1>
<div class="sub">{{.Now}} · refreshes every 5 s · <a href="/metrics">metrics</a> · <a href="/node-list">node-list</a> · <a href="/request-list">request-list</a> · <a href="/label-list">label-list</a></div>
{{if .Err}}<p class="state failed">{{.Err}}</p>{{end}}
<h2 id="labels">Labels</h2>
<table><tr><th>label</th><th>ready</th><th>min-ready</th><th>launchers</th></tr>
{{range .Labels}}<tr><td>{{field . "name"}}</td><td>{{field . "ready"}}</td><td>{{field . "min_ready"}}</td><td>{{field . "launchers"}}</td></tr>
{{else}}<tr><td colspan="4" class="empty">no labels</td></tr>{{end}}</table>
<h2 id="nodes">Nodes <span class="sub counts">{{range $s, $n := .NodeCounts}}<span>{{$s}}: {{$n}}</span>{{end}}</span></h2>
<table><tr><th>id</th><th>label</th><th>state</th><th>age</th><th>provider</th><th>namespace</th><th>pod</th><th>allocated to</th><th>locked</th><th>comment</th></tr>
{{range .Nodes}}<tr><td>{{field . "id"}}</td><td>{{field . "label"}}</td><td><span class="state {{field . "state"}}">{{field . "state"}}</span></td><td title="{{field . "age"}} s">{{age .}}</td><td>{{field . "provider"}}</td><td>{{field . "external_id"}}</td><td>{{field . "interface_ip"}}</td><td>{{field . "allocated_to"}}</td><td>{{field . "locked"}}</td><td>{{field . "comment"}}</td></tr>
{{else}}<tr><td colspan="10" class="empty">no nodes</td></tr>{{end}}</table>
<h2 id="requests">Requests</h2>
<table><tr><th>id</th><th>state</th><th>labels</th><th>nodes</th><th>requestor</th><th>declined by</th><th>age</th></tr>
{{range .Requests}}<tr><td>{{field . "id"}}</td><td><span class="state {{field . "state"}}">{{field . "state"}}</span></td><td>{{field . "node_types"}}</td><td>{{field . "nodes"}}</td><td>{{field . "requestor"}}</td><td>{{field . "declined_by"}}</td><td title="{{field . "age"}} s">{{age .}}</td></tr>
{{else}}<tr><td colspan="7" class="empty">no requests</td></tr>{{end}}</table>
</body></html>
`))

// humanAge shows an age in seconds (Nodepool webapp's unit) the way people
// read it: 45s, 3m05s, 2h10m, 3d4h.
func humanAge(v any) string {
	var sec float64
	switch x := v.(type) {
	case int:
		sec = float64(x)
	case int64:
		sec = float64(x)
	case float64:
		sec = x
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
	d := time.Duration(sec) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	data := struct {
		Now                     string
		Err                     string
		Nodes, Requests, Labels []map[string]any
		NodeCounts              map[string]int
	}{Now: time.Now().UTC().Format(time.RFC3339), NodeCounts: map[string]int{}}
	var errs []string
	var err error
	if data.Nodes, err = s.Source.Nodes(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if data.Requests, err = s.Source.Requests(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if data.Labels, err = s.Source.Labels(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if err := s.Source.Ready(ctx); err != nil {
		errs = append(errs, "not ready: "+err.Error())
	}
	sort.Strings(errs)
	for i, e := range errs {
		if i > 0 {
			data.Err += "; "
		}
		data.Err += e
	}
	for _, n := range data.Nodes {
		if st, ok := n["state"].(string); ok {
			data.NodeCounts[st]++
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTmpl.Execute(w, data); err != nil && s.Log != nil {
		s.Log.Warn("rendering status page", "err", err)
	}
}
