package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/nodeadmin"
)

func newRequestListCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:   "request-list",
		Short: "List node requests in the order launchers take them",
		Long: `Request-list reads every node request from ZooKeeper, in the order
launchers serve them (priority, relative priority, submission). -o json gives
the rows of Nodepool's webapp /request-list (plus build_set_uuid).`,
		Args:    cobra.NoArgs,
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, closeZK, err := o.admin(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			rows, err := a.Requests(cmd.Context())
			if err != nil {
				return err
			}
			ids := make([]string, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
			}
			return lo.PrintNamed(o.Out, rows, ids, func(w io.Writer) error {
				return cliutil.Table(w, func(w io.Writer) { requestTable(w, rows) })
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

func requestTable(w io.Writer, rows []nodeadmin.RequestRow) {
	fmt.Fprintln(w, "ID\tSTATE\tAGE\tLABELS\tNODES\tPROVIDER\tREQUESTOR\tDECLINED BY")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, humanAge(r.Age),
			strings.Join(r.NodeTypes, ","), dash(strings.Join(r.Nodes, ",")), dash(r.Provider), dash(r.Requestor), dash(strings.Join(r.DeclinedBy, ",")))
	}
}
