package gitsync

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kubepool/kubepool/internal/podexec"
)

// The pod side is three POSIX sh scripts run with "sh -c". They print
// repo states in the same line format, parsed by parseStates:
//
//	repo <path>
//	partial                    (an earlier sync of it was interrupted)
//	ref <oid> <refname>        (any number)
//	head <contents of .git/HEAD>
//	synced <digest>            (when the last sync of the repo completed)
//	tree clean|dirty|none|broken  (the working tree against HEAD)
//	failed <status> <path>     (instead of its state: it failed)
//	error <line>               (after failed: its last lines of stderr)
//	end                        (after the last repo)
//
// "end" is also the last line of every script, printed right before it
// exits, whether it failed or not (printed by an exit trap on a failure;
// the batch script may print it twice): podexec.Run takes it as the command's end
// (Options.EndLine), so that an exec whose exit status does not come (its
// stdin left unread) is noticed over WebSocket too, where the output
// streams stay open until the status.
// A repo in the pod is in a sync's hands while one of these exists under
// its .git: kubepool-incoming (pack files arriving), kubepool-refs (ref
// updates not applied yet) or kubepool-checkout (a checkout running, by
// the shell whose process id it holds). Whatever is left of them after a
// sync died marks the repo partial, and a later sync clears them; an
// index.lock is removed only when kubepool-checkout says a kubepool
// checkout that no longer runs took it.

// gitOpts are the git options used in the pod. A pod is disposable, so
// fsyncing packs buys nothing there (core.fsync needs git 2.36; older git
// ignores it).
const gitOpts = `-c core.fsync=none -c gc.auto=0 -c advice.detachedHead=false -c init.defaultBranch=master`

// commonSh are the shell functions the scripts share, run in a repo.
const commonSh = `g="git ` + gitOpts + `"
i=` + incoming + `
# heal removes an index.lock that a kubepool checkout left when it was
# killed: one whose shell is gone.
heal() {
	[ -f .git/kubepool-checkout ] || return 0
	IFS= read -r pid <.git/kubepool-checkout || pid=
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "kubepool-gitsync: a checkout by process $pid is running in $PWD" >&2
		return 1
	fi
	rm -f .git/index.lock
}
# treestate prints the tree line: clean when the index and working tree
# match HEAD with nothing untracked or ignored.
treestate() {
	if ! $g rev-parse -q --verify HEAD >/dev/null; then echo "tree none"; return; fi
	if s=$(GIT_OPTIONAL_LOCKS=0 $g status --porcelain --ignored 2>/dev/null); then
		if [ -z "$s" ]; then echo "tree clean"; else echo "tree dirty"; fi
	else
		echo "tree broken"
	fi
}
# checkout resets the tree to HEAD and removes untracked files; $1 is
# "keep" to leave a dirty tree alone.
checkout() {
	$g rev-parse -q --verify HEAD >/dev/null || return 0
	heal
	if [ "$1" = keep ] && [ "$(treestate)" != "tree clean" ]; then return 0; fi
	if [ -f .git/index.lock ]; then
		echo "kubepool-gitsync: $PWD/.git/index.lock exists: another git process is running there, or one that crashed left it (not kubepool: left alone)" >&2
		return 1
	fi
	# The mark claims the lock git is about to take; it stays when git
	# or this shell is killed (git fails otherwise releasing its lock).
	echo $$ >.git/kubepool-checkout
	$g reset -q --hard || { rc=$?; [ $rc -gt 128 ] || rm -f .git/kubepool-checkout; return $rc; }
	settle
	$g clean -q -d -f -f -x || { rc=$?; [ $rc -gt 128 ] || rm -f .git/kubepool-checkout; return $rc; }
	rm -f .git/kubepool-checkout
}
# settle lets git trust the stat data of the files a checkout just wrote
# (those newer than the checkout's mark). They were written in the same
# second as the index, so git takes them as "racily clean" and reads every
# one of them again at each status (20 repos, 85 MB of trees: 0.3 s more
# per no-change sync) until the index is written in a later second. Their
# mtime goes one second back and the index is refreshed: each of them is
# read once, here, and a file changed in the meantime stays changed.
# Without find -newer or touch -d @N it does nothing (slower, still right).
settle() {
	t=$(($(date +%s) - 1))
	find . -path ./.git -prune -o -newer .git/kubepool-checkout -exec touch -h -c -d "@$t" -- {} + 2>/dev/null || return 0
	$g update-index -q --refresh >/dev/null 2>&1 || :
}
# state prints the repo's state lines.
state() {
	echo "repo $1"
	$g for-each-ref --format='ref %(objectname) %(refname)'
	IFS= read -r h <.git/HEAD
	echo "head $h"
	[ ! -f .git/kubepool-synced ] || echo "synced $(cat .git/kubepool-synced)"
	treestate
}
nogit() { echo "kubepool-gitsync: git: command not found in this container" >&2; exit 127; }
command -v git >/dev/null 2>&1 || nogit
`

// endTrap prints the end line when a script exits with a failure, and
// stops its heartbeat.
const endTrap = `trap 'rc=$?; [ -z "${hb:-}" ] || kill $hb 2>/dev/null || :; [ $rc -eq 0 ] || echo end; exit $rc' EXIT
`

// heartbeatSh starts the heartbeat of the scripts that receive a stream:
// each second in which the processes of the script's session (in a pod,
// an exec's shell leads its own) read anything, it prints "` + heartbeat + ` <bytes read
// by them in all>" on stderr; it ends with the shell. Once a stream is
// all sent, podexec takes its silence for a stall (Options.Heartbeat): a
// receiver that stopped reading with the rest of the stream in buffers on
// the way, or a checkout that stopped, is noticed like one that stopped
// while stdin had data. Where /proc cannot be read, the heartbeat only
// says the script runs, and such a stall is left to the caller's context.
const heartbeatSh = `heartbeat() {
	if ! read -r me _ 2>/dev/null </proc/self/stat || ! read -r _ 2>/dev/null <"/proc/$me/io"; then
		# No /proc to read: only say that the script runs.
		while kill -0 $$ 2>/dev/null; do echo "` + heartbeat + `" >&2; sleep 1 >/dev/null 2>&1; done
		return 0
	fi
	read -r st </proc/$$/stat
	set -- ${st##*) }
	sid=$4
	last=
	while kill -0 $$ 2>/dev/null; do
		n=0
		for d in /proc/[0-9]*; do
			read -r st 2>/dev/null <"$d/stat" || continue
			set -- ${st##*) }
			[ "$4" = "$sid" ] && [ "$2" != "$me" ] && [ "${d#/proc/}" != "$me" ] || continue
			while read -r k v; do [ "$k" != rchar: ] || n=$((n + v)); done 2>/dev/null <"$d/io" || :
		done
		[ "$n" = "$last" ] || echo "` + heartbeat + ` $n" >&2
		last=$n
		sleep 1 >/dev/null 2>&1
	done
}
heartbeat </dev/null >/dev/null &
hb=$!
`

// heartbeat starts the heartbeat lines (see heartbeatSh).
const heartbeat = "kubepool-alive"

// destSh makes the destination root $1 ($HOME when empty) the current
// directory, creating it; a destination that cannot be made or written is
// an error naming it, with exit status 4.
const destSh = `root=${1:-${HOME:-/}}
dest() { echo "kubepool-gitsync: destination $root: $1" >&2; exit 4; }
m=$(mkdir -p -- "$root" 2>&1) || dest "$m"
[ -d "$root" ] || dest "not a directory"
[ -w "$root" ] || dest "not writable (read-only file system or permissions)"
cd "$root" || dest "cannot enter it"
`

// probeScript prints the state of every repo whose path is a line of stdin,
// relative to the destination root $1 ($HOME when empty). Repos that are
// not there print only their "repo" line (and "partial" when an
// interrupted sync left files). With $2 = "create", it first creates the
// destination root as a sync needs it.
const probeScript = endTrap + commonSh + `root=${1:-${HOME:-/}}
if [ "${2:-}" = create ]; then
` + destSh + `else
	cd "$root" 2>/dev/null || root=
fi
while IFS= read -r p; do
	if [ -z "$root" ] || [ ! -d "$p/.git" ]; then echo "repo $p"; continue; fi
	(
	cd "$p" || exit 0
	if [ -f .git/HEAD ]; then state "$p"; else echo "repo $p"; fi
	if [ -d "$i" ] || [ -f .git/kubepool-refs ] || [ -f .git/kubepool-checkout ]; then echo partial; fi
	) </dev/null
done
echo end
`

// applyScript brings one repo, $2 under the destination root $1, to a new
// state. stdin is: how objects follow ("0": none, "pack": a pack stream
// for git index-pack, "tar": a tar of pack and index files for
// .git/objects/pack), HEAD ("ref: <name>" or an object id), git update-ref
// --stdin commands, an empty line, then the objects. Refs move in one
// transaction, only after the objects are in place; the digest $3 is
// written only after the checkout ($4 = "keep": a dirty tree is left as
// it is). It ends by printing the repo's state as the probe does.
const applyScript = `set -eu
` + endTrap + commonSh + destSh + heartbeatSh + `mkdir -p "$2"
cd "$2"
fresh=
[ -f .git/HEAD ] || { $g init -q --template= && fresh=1; }
heal
IFS= read -r mode
IFS= read -r head
while IFS= read -r l && [ -n "$l" ]; do printf '%s\n' "$l"; done >.git/kubepool-refs
rm -f .git/kubepool-synced
case $mode in
pack) $g index-pack --stdin --fix-thin >/dev/null ;;
tar\ *)
	rm -rf "$i"
	mkdir "$i"
	tar -x -o -f - -C "$i"
	for f in ${mode#tar }; do [ -f "$i/$f" ] || { echo "kubepool-gitsync: $f: missing from the stream" >&2; exit 3; }; done
	for f in ${mode#tar }; do mv -f "$i/$f" .git/objects/pack/; done
	rm -rf "$i" ;;
*) rm -rf "$i" ;;
esac
$g update-ref --no-deref --stdin <.git/kubepool-refs
case $head in
"ref: "*) $g symbolic-ref HEAD "${head#ref: }" ;;
*) $g update-ref --no-deref HEAD "$head" ;;
esac
checkout "${4:-${fresh:+fresh}}"
rm -f .git/kubepool-refs
echo "$3" >.git/kubepool-synced
state "$2"
echo end
`

// incoming is where a repo's pack files wait, under its .git, until all of
// them arrived; both scripts use it and clear it before they write into it.
const incoming = ".git/objects/pack/kubepool-incoming"

// batchScript brings several fresh repos (ones that have no refs in the
// pod) to their new states from one stream: a tar, extracted under the
// destination root $1, that carries for each repo $3, $4, ... in that
// order the members <path>/` + incoming + `/ kubepool-meta, kubepool-refs,
// its pack and index files, then kubepool-done. The meta file's lines are
// "tar <file>:<size>..." (or "skip": the repo is not in this stream),
// HEAD, the digest to record, and "1" when HEAD names a commit to check
// out; kubepool-refs is the input of git update-ref --stdin. $2 is "keep"
// to leave dirty trees alone. tar names each member as it starts
// extracting it, so when it names a repo's kubepool-done every file before
// it is complete (as its size shows): that repo is installed and checked
// out there, while tar goes on with the next one, and its state is printed
// as the probe does, or "failed" and its error lines. A repo whose
// kubepool-done never came (a stream cut short) is left without refs,
// marked partial. The output ends with "end" after the last repo, and the
// exit status is non-zero unless every repo was brought to its state.
const batchScript = `set -u
` + endTrap + commonSh + destSh + heartbeatSh + `keep=$2
shift 2
(for p; do set -- "$@" "$p/$i"; shift; done; rm -rf "$@")
exec 3>&1
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
	# Not in an if: bash would ignore set -e in there.
	msg=$( (
	set -e
	cd "$p"
	{ IFS= read -r files; IFS= read -r head; IFS= read -r digest; IFS= read -r co; } <"$i/kubepool-meta"
	[ "$files" != skip ] || { rm -rf "$i"; exit 0; }
	fresh=fresh
	if [ ! -f .git/HEAD ]; then
		case $head in
		"ref: refs/heads/"*) $g -c "init.defaultBranch=${head#ref: refs/heads/}" init -q --template= ;;
		*) $g init -q --template= ;;
		esac
	fi
	heal
	rm -f .git/kubepool-synced
	set -- ${files#tar}
	for fs; do
		f=${fs%:*}
		[ -f "$i/$f" ] || { echo "kubepool-gitsync: $f: missing from the stream" >&2; exit 3; }
		n=$(($(wc -c <"$i/$f")))
		[ "$n" = "${fs##*:}" ] || { echo "kubepool-gitsync: $f: $n of ${fs##*:} bytes arrived (disk full?)" >&2; exit 3; }
	done
	for fs; do mv -f "$i/${fs%:*}" .git/objects/pack/; done
	$g update-ref --no-deref --stdin <"$i/kubepool-refs"
	IFS= read -r h <.git/HEAD || h=
	if [ "$h" != "$head" ]; then
		case $head in
		"ref: "*) $g symbolic-ref HEAD "${head#ref: }" ;;
		*) $g update-ref --no-deref HEAD "$head" ;;
		esac
	fi
	[ "$keep" != keep ] || fresh=keep
	[ "$co" != 1 ] || checkout $fresh
	rm -rf "$i"
	echo "$digest" >.git/kubepool-synced
	state "$p" >&3
	) </dev/null 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "failed $rc $p"
		printf '%s\n' "$msg" | tail -n 5 | sed 's/^/error /'
		failed=1
	fi
done
[ $# -eq 0 ] || { echo "kubepool-gitsync: stream ended before repo $1" >&2; failed=1; }
echo end
exit $failed
}
`

// endLine is the scripts' last line (see above).
const endLine = "end"

// podState is a repo's state as the pod reports it.
type podState struct {
	state
	Exists bool
	Synced string // digest of the last completed sync
	// Tree is the working tree against HEAD: "clean", "dirty", "none" (no
	// commit checked out) or "broken"; "" when not reported.
	Tree string
	// Partial: an earlier sync of the repo was interrupted.
	Partial bool
	// Failed: the script failed this repo, saying Errors.
	Failed   bool
	ExitCode int
	Errors   []string
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
		case key == "failed":
			done()
			code, p, _ := strings.Cut(val, " ")
			cur, curPath = &podState{Failed: true, ExitCode: -1}, p
			if n, err := strconv.Atoi(code); err == nil {
				cur.ExitCode = n
			}
		case key == "error" && cur != nil && cur.Failed:
			cur.Errors = append(cur.Errors, val)
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
		case key == "tree":
			cur.Tree = strings.TrimSpace(val)
		case key == "partial":
			cur.Partial = true
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
