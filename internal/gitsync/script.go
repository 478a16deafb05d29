package gitsync

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kubepool/kubepool/internal/podexec"
)

// The pod side is two POSIX sh scripts run with "sh -c". Both print repo
// states in the same line format, parsed by parseStates:
//
//	repo <path>
//	ref <oid> <refname>        (any number)
//	head <contents of .git/HEAD>
//	synced <digest>            (when the last sync of the repo completed)
//	end                        (after the last repo)

// gitOpts are the git options used in the pod. A pod is disposable, so
// fsyncing packs buys nothing there (core.fsync needs git 2.36; older git
// ignores it).
const gitOpts = `-c core.fsync=none -c gc.auto=0 -c advice.detachedHead=false -c init.defaultBranch=master`

// probeScript prints the state of every repo whose path is a line of stdin,
// relative to the destination root $1 ($HOME when empty). Repos that are
// not there print only their "repo" line.
const probeScript = `command -v git >/dev/null 2>&1 || { echo "kubepool-gitsync: git: command not found in this container" >&2; exit 127; }
root=${1:-${HOME:-/}}
cd "$root" 2>/dev/null || root=
while IFS= read -r p; do
	echo "repo $p"
	[ -n "$root" ] && [ -f "$p/.git/HEAD" ] || continue
	git -C "$p" for-each-ref --format='ref %(objectname) %(refname)'
	echo "head $(cat "$p/.git/HEAD")"
	[ -f "$p/.git/kubepool-synced" ] && echo "synced $(cat "$p/.git/kubepool-synced")"
done
echo end
`

// applyScript brings one repo, $2 under the destination root $1, to a new
// state. stdin is: how objects follow ("0": none, "pack": a pack stream
// for git index-pack, "tar": a tar of pack and index files for
// .git/objects/pack), HEAD ("ref: <name>" or an object id), git update-ref
// --stdin commands, an empty line, then the objects. Refs move in one
// transaction, only after the objects are in place; the digest $3 is
// written only after the checkout. It ends by printing the repo's state as
// the probe does.
const applyScript = `set -eu
command -v git >/dev/null 2>&1 || { echo "kubepool-gitsync: git: command not found in this container" >&2; exit 127; }
root=${1:-${HOME:-/}}
g="git ` + gitOpts + `"
mkdir -p "$root/$2"
cd "$root/$2"
fresh=
[ -f .git/HEAD ] || { $g init -q --template= && fresh=1; }
IFS= read -r mode
IFS= read -r head
while IFS= read -r l && [ -n "$l" ]; do printf '%s\n' "$l"; done >.git/kubepool-refs
rm -f .git/kubepool-synced
case $mode in
pack) $g index-pack --stdin --fix-thin >/dev/null ;;
tar\ *)
	t=.git/objects/pack/kubepool-incoming
	rm -rf "$t"
	mkdir "$t"
	tar -x -o -f - -C "$t"
	for f in ${mode#tar }; do [ -f "$t/$f" ] || { echo "kubepool-gitsync: $f: missing from the stream" >&2; exit 3; }; done
	for f in ${mode#tar }; do mv -f "$t/$f" .git/objects/pack/; done
	rm -rf "$t" ;;
esac
$g update-ref --no-deref --stdin <.git/kubepool-refs
case $head in
"ref: "*) $g symbolic-ref HEAD "${head#ref: }" ;;
*) $g update-ref --no-deref HEAD "$head" ;;
esac
if $g rev-parse -q --verify HEAD >/dev/null; then
	$g reset -q --hard
	[ -n "$fresh" ] || $g clean -q -d -f -f -x
fi
rm -f .git/kubepool-refs
echo "$3" >.git/kubepool-synced
echo "repo $2"
$g for-each-ref --format='ref %(objectname) %(refname)'
echo "head $(cat .git/HEAD)"
echo "synced $3"
echo end
`

// podState is a repo's state as the pod reports it.
type podState struct {
	state
	Exists bool
	Synced string // digest of the last completed sync
}

// parseStates reads the scripts' output.
func parseStates(r io.Reader) (map[string]*podState, error) {
	states := map[string]*podState{}
	var cur *podState
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, val, _ := strings.Cut(line, " ")
		switch {
		case key == "end":
			for _, s := range states {
				slices.SortFunc(s.Refs, func(a, b ref) int { return strings.Compare(a.Name, b.Name) })
			}
			return states, nil
		case key == "repo":
			cur = &podState{}
			states[val] = cur
		case cur == nil:
			return nil, fmt.Errorf("unexpected line %q before the first repo", line)
		case key == "ref":
			oid, name, ok := strings.Cut(val, " ")
			if !ok {
				return nil, fmt.Errorf("unexpected ref line %q", line)
			}
			cur.Refs = append(cur.Refs, ref{Name: name, OID: oid})
		case key == "head":
			cur.Exists = true
			cur.Head = strings.TrimSpace(val)
		case key == "synced":
			cur.Synced = strings.TrimSpace(val)
		default:
			return nil, fmt.Errorf("unexpected line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errIncomplete
}

// errIncomplete is output cut short. Over SPDY, client-go reports a
// connection that broke as a command that succeeded, so the scripts end
// their output with a marker, and its absence is a broken stream.
var errIncomplete = fmt.Errorf("output ended before its end marker: %w", podexec.ErrStream)
