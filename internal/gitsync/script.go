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

// incoming is where a repo's pack files wait, under its .git, until all of
// them arrived; both scripts use it and clear it before they write into it.
const incoming = ".git/objects/pack/kubepool-incoming"

// batchScript brings several fresh repos (ones that have no refs in the
// pod) to their new states from one stream: a tar, extracted under the
// destination root $1, that carries for each repo $2, $3, ... in that
// order the members <path>/` + incoming + `/ kubepool-meta, kubepool-refs,
// its pack and index files, then kubepool-done. The meta file's lines are
// "tar <file>..." (or "skip": the repo is not in this stream), HEAD, the
// digest to record, and "1" when HEAD names a commit to check out;
// kubepool-refs is the input of git update-ref --stdin. tar names each
// member as it starts extracting it, so when it names a repo's
// kubepool-done every file before it is complete: that repo is installed
// and checked out there, while tar goes on with the next one, and its state
// is printed as the probe does. A repo whose kubepool-done never came (a
// stream cut short) is left without refs and not printed. The output ends
// with "end" after the last repo, and the exit status is non-zero unless
// every repo was brought to its state.
const batchScript = `set -u
command -v git >/dev/null 2>&1 || { echo "kubepool-gitsync: git: command not found in this container" >&2; exit 127; }
root=${1:-${HOME:-/}}
shift
g="git ` + gitOpts + `"
i=` + incoming + `
mkdir -p "$root" && cd "$root" || exit 1
(for p; do set -- "$@" "$p/$i"; shift; done; rm -rf "$@")
{ tar -x -o -v -f -; echo "kubepool-tar-exit $?"; } | {
failed=0
while IFS= read -r l; do
	case $l in
	*/$i/kubepool-done) ;;
	"kubepool-tar-exit "*) [ "$l" = "kubepool-tar-exit 0" ] || failed=1; continue ;;
	*) continue ;;
	esac
	[ $# -gt 0 ] || { echo "kubepool-gitsync: more repos in the stream than named" >&2; failed=1; break; }
	p=$1
	shift
	(
	set -e
	cd "$p"
	{ IFS= read -r files; IFS= read -r head; IFS= read -r digest; IFS= read -r co; } <"$i/kubepool-meta"
	[ "$files" != skip ] || { rm -rf "$i"; exit 0; }
	fresh=
	if [ ! -f .git/HEAD ]; then
		case $head in
		"ref: refs/heads/"*) $g -c "init.defaultBranch=${head#ref: refs/heads/}" init -q --template= ;;
		*) $g init -q --template= ;;
		esac
		fresh=1
	fi
	rm -f .git/kubepool-synced
	set -- ${files#tar}
	for f; do [ -f "$i/$f" ] || { echo "kubepool-gitsync: $p: $f: missing from the stream" >&2; exit 3; }; done
	for f; do mv -f "$i/$f" .git/objects/pack/; done
	$g update-ref --no-deref --stdin <"$i/kubepool-refs"
	IFS= read -r h <.git/HEAD || h=
	if [ "$h" != "$head" ]; then
		case $head in
		"ref: "*) $g symbolic-ref HEAD "${head#ref: }" ;;
		*) $g update-ref --no-deref HEAD "$head" ;;
		esac
	fi
	if [ "$co" = 1 ]; then
		$g reset -q --hard
		[ -n "$fresh" ] || $g clean -q -d -f -f -x
	fi
	rm -rf "$i"
	echo "$digest" >.git/kubepool-synced
	echo "repo $p"
	$g for-each-ref --format='ref %(objectname) %(refname)'
	IFS= read -r h <.git/HEAD
	echo "head $h"
	echo "synced $digest"
	) </dev/null
	rc=$?
	[ $rc -eq 0 ] || { echo "kubepool-gitsync: $p: exit status $rc" >&2; failed=1; }
done
[ $# -eq 0 ] || { echo "kubepool-gitsync: stream ended before repo $1" >&2; failed=1; }
echo end
exit $failed
}
`

// podState is a repo's state as the pod reports it.
type podState struct {
	state
	Exists bool
	Synced string // digest of the last completed sync
}

// parseStates reads the scripts' output. On an error it also returns the
// states of the repos whose lines all came before it: a repo's lines are
// complete when the next repo's or the end marker follows.
func parseStates(r io.Reader) (map[string]*podState, error) {
	states := map[string]*podState{}
	var cur *podState
	var curPath string
	done := func() {
		if cur != nil {
			slices.SortFunc(cur.Refs, func(a, b ref) int { return strings.Compare(a.Name, b.Name) })
			states[curPath] = cur
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, val, _ := strings.Cut(line, " ")
		switch {
		case key == "end":
			done()
			return states, nil
		case key == "repo":
			done()
			cur, curPath = &podState{}, val
		case cur == nil:
			return states, fmt.Errorf("unexpected line %q before the first repo", line)
		case key == "ref":
			oid, name, ok := strings.Cut(val, " ")
			if !ok {
				return states, fmt.Errorf("unexpected ref line %q", line)
			}
			cur.Refs = append(cur.Refs, ref{Name: name, OID: oid})
		case key == "head":
			cur.Exists = true
			cur.Head = strings.TrimSpace(val)
		case key == "synced":
			cur.Synced = strings.TrimSpace(val)
		default:
			return states, fmt.Errorf("unexpected line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return states, err
	}
	return states, errIncomplete
}

// errIncomplete is output cut short. Over SPDY, client-go reports a
// connection that broke as a command that succeeded, so the scripts end
// their output with a marker, and its absence is a broken stream.
var errIncomplete = fmt.Errorf("output ended before its end marker: %w", podexec.ErrStream)
