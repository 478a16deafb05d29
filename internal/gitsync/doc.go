// Package gitsync pushes a workspace of git repositories into a pod over
// exec (package podexec), the way a CI system hands the repos it prepared to
// the machine that runs a job, without SSH, a Service or a kubectl binary.
//
// A workspace is a directory of repositories at any depth, such as Zuul's
// src/<host>/<project> layout; each repo lands at the same relative path
// under the destination in the pod. After a successful Sync, every ref of
// every repo in the pod (branches, tags, anything under refs/) points where
// it points in the source, refs the source lacks are gone, HEAD is the same
// (a branch, or a detached commit), and the working tree and index are reset
// to HEAD with untracked and ignored files removed. Sync checks this by
// reading each repo's refs, HEAD and working tree state (git status) back
// from the pod after applying them; it never reports a repo verified that
// it could not read back so. Every sync checks the working trees, also of
// repos whose refs did not change, and resets and cleans one that differs
// (or, with Syncer.NoClean, leaves it and fails the repo).
//
// Transfer is incremental: Sync first asks the pod, in one exec for the
// whole workspace (while it reads the repos here), which refs it already
// has. Repos the pod has no refs of (a first sync) go over a few exec
// streams (Syncer.Streams), several repos in each, as one tar of each
// repo's own pack and index files (plus a pack of its loose objects), so
// the pod has no object to hash or inflate; the pod installs and checks out
// each repo as soon as its last file arrived, while the next one streams
// in. Every other repo that differs gets an exec of its own with a thin
// pack of only the objects the pod lacks (git pack-objects with the pod's
// tips as negative revisions), fed to git index-pack. In the pod a small
// sh script installs the objects (pack files only once all of them
// arrived), applies the ref updates in one atomic git update-ref
// transaction (compare-and-swap against what the pod had), checks the tree
// out and prints the refs back, in the same exec. A destination that
// already holds a clone, such as a repo cache baked into the image,
// therefore only receives the difference. Repos already in the source's
// state are skipped after the first exec.
//
// Exec streams are unreliable: a stream that breaks, a receiver in the pod
// that dies (noticed when its output ends or the script prints its end
// line, whatever the transport) or stops reading (Syncer.StallTimeout: no
// input taken and nothing printed, or, once the whole stream is sent, no
// heartbeat from the pod script, which reports each second in which its
// processes read; see package podexec), or a command that fails is retried
// (after asking the pod again what it has) up to Syncer.Attempts times,
// each repo of a stream that did not come back verified on its own;
// failures the pod says will not change (a full or read-only disk, a
// destination it cannot create: *DestError) are not retried. Errors carry
// the failing command's own message (*ScriptError), not the script.
// Because refs only move in one transaction after the whole pack has
// arrived, an interrupted push leaves the repo at its old state (or, for a
// first push, without refs), never at a partial one; what it leaves behind
// (pack files arriving, ref updates, a checkout's marker) marks the repo
// partial, which Check and the next Sync report, and the next Sync
// repairs, including an index.lock left by a checkout kubepool started and
// that was killed (never a lock kubepool did not take).
//
// The pod needs sh, tar and git (1.8.5 or newer; with 2.36 or newer it skips
// fsync, which a disposable pod does not need).
// Images without git use a git sidecar (internal/nodepod adds one to a
// node's pod).
package gitsync
