package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/nodeadmin"
)

func newInfoCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:   "info NODE",
		Short: "Show one node's record",
		Long: `Info shows a node's record as Nodepool wrote it, with its lock state. The
table hides the node's token; -o json and -o yaml show the whole record,
token included.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closeZK, err := o.admin(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			info, err := a.Info(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return lo.PrintNamed(o.Out, info, []string{info.Row.ID}, func(w io.Writer) error {
				return cliutil.Table(w, func(w io.Writer) { infoTable(w, info) })
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

// infoTable writes one "key  value" line per record member, sorted, with
// the token redacted.
func infoTable(w io.Writer, info *nodeadmin.NodeInfo) {
	rec := map[string]any{}
	b, _ := json.Marshal(info)
	_ = json.Unmarshal(b, &rec)
	if cp, ok := rec["connection_port"].(map[string]any); ok {
		if _, ok := cp["token"]; ok {
			cp["token"] = "(hidden; -o json shows it)"
		}
		if _, ok := cp["ca_crt"]; ok {
			cp["ca_crt"] = "(hidden; -o json shows it)"
		}
		delete(rec, "ssh_port") // the same as connection_port
	}
	keys := make([]string, 0, len(rec))
	for k := range rec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := rec[k]
		s, ok := v.(string)
		if !ok {
			vb, _ := json.Marshal(v)
			s = string(vb)
		}
		fmt.Fprintf(w, "%s\t%s\n", k, s)
	}
}
