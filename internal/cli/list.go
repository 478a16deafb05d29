package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/nodeadmin"
)

// opsOptions are the flags of the operator commands that read ZooKeeper
// and print: which ZooKeeper, and -o.
type opsOptions struct {
	zkOptions
	outputOptions
}

func (o *opsOptions) AddFlags(cmd *cobra.Command) {
	o.zkOptions.AddFlags(cmd)
	o.outputOptions.AddFlags(cmd)
}

func (o *opsOptions) Validate() error {
	if err := o.outputOptions.Validate(); err != nil {
		return err
	}
	return o.zkOptions.Validate()
}

func newListCmd(o *rootOptions) *cobra.Command {
	var lo opsOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List nodes: id, provider, label, state, age, namespace/pod, lock, comment",
		Long: `List reads every node record from ZooKeeper, as 'nodepool list' does.
AGE is the time in the current state. -o json gives the rows of Nodepool's
webapp /node-list (plus namespace, pod and lock_holder).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lo.Validate(); err != nil {
				return err
			}
			a, closeZK, err := o.admin(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			rows, err := a.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			return lo.print(o.Out, rows, func(w io.Writer) { nodeTable(w, rows) })
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

// admin connects to ZooKeeper and returns a nodeadmin.Admin on it and the
// function that closes the connection.
func (o *rootOptions) admin(cmd *cobra.Command, z *zkOptions) (*nodeadmin.Admin, func(), error) {
	log, err := o.Logger()
	if err != nil {
		return nil, nil, err
	}
	c, _, err := z.connect(cmd.Context(), cmd, log)
	if err != nil {
		return nil, nil, err
	}
	return &nodeadmin.Admin{ZK: c}, c.Close, nil
}

func nodeTable(w io.Writer, rows []nodeadmin.NodeRow) {
	fmt.Fprintln(w, "ID\tPROVIDER\tLABEL\tSTATE\tAGE\tNAMESPACE/POD\tLOCKED\tCOMMENT")
	for _, r := range rows {
		where := r.Namespace
		if r.Pod != "" {
			where += "/" + r.Pod
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, dash(r.Provider), dash(r.Label), dash(r.State),
			humanAge(r.Age), dash(where), r.Locked, dash(strings.ReplaceAll(r.Comment, "\n", " ")))
	}
}
