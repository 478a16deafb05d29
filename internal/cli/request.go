package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/nodeaccess"
	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/requestor"
	"github.com/kubepool/kubepool/internal/zk"
)

type requestOptions struct {
	zkOptions
	Provider  string
	BuildSet  string
	Priority  int
	Job       string
	Wait      time.Duration
	Output    string
	OutputDir string
}

func (r *requestOptions) AddFlags(cmd *cobra.Command) {
	r.zkOptions.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&r.Provider, "provider", "", "preferred provider (Zuul's provider affinity)")
	f.StringVar(&r.BuildSet, "buildset", "", "build_set_uuid in the requestor data (default: a new one)")
	f.IntVar(&r.Priority, "priority", requestor.PriorityNormal, "request priority: 100 high, 200 normal, 300 low (lower is served first)")
	f.StringVar(&r.Job, "job", "", "job_name in the requestor data (default kubepool-request)")
	f.DurationVar(&r.Wait, "wait", 10*time.Minute, "how long to wait for the nodes; the request is withdrawn after")
	f.StringVarP(&r.Output, "output", "o", "json", "what to print: json, yaml, table or name (node ids, one a line; ids is the old name), kubeconfig or inventory")
	f.StringVar(&r.OutputDir, "output-dir", "", "also write kubeconfig, inventory.yaml and request.json into this directory")
}

func (r *requestOptions) Validate() error {
	switch r.Output {
	case "kubeconfig", "inventory", "ids":
	default:
		out := cliutil.Output{Format: r.Output, Names: true}
		if err := out.Validate(); err != nil {
			return fmt.Errorf("-o %q: want json, yaml, table, name, kubeconfig or inventory", r.Output)
		}
	}
	if r.Wait <= 0 {
		return fmt.Errorf("--wait %v: want a positive duration", r.Wait)
	}
	if r.Priority < 0 || r.Priority > 999 {
		return fmt.Errorf("--priority %d: want 0 to 999", r.Priority)
	}
	return r.zkOptions.Validate()
}

func newRequestCmd(o *rootOptions) *cobra.Command {
	var ro requestOptions
	cmd := &cobra.Command{
		Use:   "request LABEL...",
		Short: "Request nodes as Zuul does; print their kubeconfig, Ansible inventory or records",
		Long: `Request asks the launchers for one node per LABEL exactly as Zuul does: it
submits a node request (requestor data with a build_set_uuid), watches it
until a launcher fulfils it, locks each node, checks that it was allocated to
the request, deletes the request and marks the nodes in-use.

Zuul keeps node locks while a job runs; this command exits, so it lets go of
the locks once the nodes are in-use. The launcher does not delete in-use
nodes: give them back with 'kubepool return' (or hold or delete them).

-o kubeconfig and -o inventory print what Zuul's executor writes for the
same nodes: a kubeconfig with one context per node, and an Ansible inventory
in which each pod is a host reached with the kubectl connection. Ansible
needs both: write them with --output-dir and point KUBECONFIG at the
kubeconfig. -o json (and -o yaml) prints the request id, the buildset and
the node records (tokens included); -o name the node ids, one a line; -o
table the nodes as 'kubepool list' shows them. On a terminal, stderr shows
what the request waits for (its state, the launchers that declined it, the
nodes allocated so far).`,
		Example: `  dir=$(mktemp -d)
  kubepool request pod --output-dir "$dir" -o name
  KUBECONFIG=$dir/kubeconfig ansible -i "$dir/inventory.yaml" all -m command -a 'uname -a'
  kubepool return $(cat ids)`,
		Args:    cobra.MinimumNArgs(1),
		PreRunE: validate(&ro),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRequest(cmd, o, ro, args)
		},
	}
	ro.AddFlags(cmd)
	return cmd
}

func runRequest(cmd *cobra.Command, o *rootOptions, ro requestOptions, labels []string) error {
	log := o.Log()
	c, _, err := o.zookeeper(cmd, &ro.zkOptions)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), ro.Wait)
	defer cancel()
	line := o.Progress(ro.Output != "json" && ro.Output != "yaml" && ro.Output != "name" && ro.Output != "ids")
	defer line.Finish()
	res, err := requestor.Request(ctx, c, requestor.Spec{
		Labels: labels, Provider: ro.Provider, BuildSet: ro.BuildSet, Priority: ro.Priority, JobName: ro.Job,
		OnSubmit: func(id string) {
			log.Info("request submitted; waiting for a launcher", "request", id, "labels", labels)
		},
		OnUpdate: func(r *zk.Request) { line.Set(requestProgress(r, len(labels))) },
	})
	line.Finish()
	if err != nil {
		return err
	}
	ids := make([]string, len(res.Nodes))
	for i, n := range res.Nodes {
		ids[i] = n.ID
	}
	log.Info("nodes in use; give them back with `kubepool return`", "request", res.Request, "nodes", ids)

	files, err := nodeaccess.NewExecutorFiles(res.Nodes)
	if err != nil {
		return err
	}
	record, err := requestRecord(res)
	if err != nil {
		return err
	}
	printed := func(format string) func() ([]byte, error) {
		return func() ([]byte, error) {
			var b bytes.Buffer
			out := cliutil.Output{Format: format, Names: true}
			err := out.PrintNamed(&b, record, ids, func(w io.Writer) error {
				rows := make([]nodeadmin.NodeRow, len(res.Nodes))
				now := time.Now()
				for i, n := range res.Nodes {
					rows[i] = nodeadmin.NewNodeRow(n, now)
				}
				return cliutil.Table(w, func(w io.Writer) { nodeTable(w, rows) })
			})
			return b.Bytes(), err
		}
	}
	outputs := map[string]func() ([]byte, error){
		"kubeconfig": files.KubeconfigYAML,
		"inventory":  files.InventoryYAML,
		"json":       printed("json"),
		"yaml":       printed("yaml"),
		"table":      printed("table"),
		"name":       printed("name"),
		"ids":        printed("name"),
	}
	if ro.OutputDir != "" {
		if _, _, err := files.WriteDir(ro.OutputDir); err != nil {
			return err
		}
		for name, out := range map[string]string{"request.json": "json", "ids": "ids"} {
			b, err := outputs[out]()
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(ro.OutputDir, name), b, 0o600); err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
		}
	}
	b, err := outputs[ro.Output]()
	if err != nil {
		return err
	}
	_, err = io.Copy(o.Out, bytes.NewReader(b))
	return err
}

// requestProgress says what a request of n nodes waits for.
func requestProgress(r *zk.Request, n int) string {
	s := fmt.Sprintf("request %s: %s", r.ID, r.State)
	switch r.State {
	case zk.RequestRequested:
		s += ": waiting for a launcher to take it"
	case zk.RequestPending:
		s += fmt.Sprintf(": a launcher is making nodes (%d of %d allocated)", len(r.Nodes), n)
	}
	if len(r.DeclinedBy) > 0 {
		s += "; declined by " + strings.Join(r.DeclinedBy, ", ")
	}
	return s
}

// requestRecord is -o json and -o yaml: the request, the buildset and the
// node records as Nodepool writes them, each with its id.
func requestRecord(res *requestor.Result) (map[string]any, error) {
	nodes := make([]map[string]any, len(res.Nodes))
	for i, n := range res.Nodes {
		b, err := n.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encoding node %s: %w", n.ID, err)
		}
		if err := json.Unmarshal(b, &nodes[i]); err != nil {
			return nil, fmt.Errorf("decoding node %s: %w", n.ID, err)
		}
		nodes[i]["id"] = n.ID
	}
	return map[string]any{"request": res.Request, "build_set_uuid": res.BuildSet, "nodes": nodes}, nil
}
