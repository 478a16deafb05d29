// Package zk is the legacy Nodepool protocol over ZooKeeper, as Zuul and
// Nodepool speak it: node requests (/nodepool/requests), node records
// (/nodepool/nodes), their kazoo-recipe locks, and component registrations
// (/nodepool/components). A Zuul deployment that talks to Nodepool talks to
// a kubepool launcher built on this package with no change on its side.
//
// Contract:
//
//   - Records round-trip: reading a request or node and writing it back
//     changes only what the caller changed. Members this package does not
//     model (Zuul's "id" in node records, anything newer) are kept, and
//     unchanged members are written back byte for byte. Changed members are
//     written as Nodepool writes them (unset strings as null, lists as []).
//   - Writes of requests and nodes are versioned: UpdateRequest and
//     UpdateNode fail with ErrConflict if the znode changed since it was
//     read. Hold the lock (LockRequest, LockNode) while changing a record.
//   - Locks are kazoo's Lock recipe, compatible with Zuul's and Nodepool's
//     locks on the same znodes. A lock is lost when the session expires.
//   - Components registered with Register are re-registered automatically
//     when a new session replaces an expired one; Options.OnSessionEvent
//     tells the caller about session changes (locks are gone after
//     StateExpired).
//   - Nothing is logged unless Options.Logger is set; go-zookeeper's own log
//     goes there too, at debug level.
//   - A znode whose data is not the JSON expected is an error (*DecodeError
//     naming the path), never a panic.
package zk
