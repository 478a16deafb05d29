package zk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/go-zookeeper/zk"
)

// childIDs returns the names of root's children, sorted; none if root does
// not exist yet.
func (c *Client) childIDs(ctx context.Context, root string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, _, err := c.conn.Children(c.abs(root))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", root, zkErr(err))
	}
	slices.Sort(ids)
	return ids, nil
}

// listConcurrency bounds the reads a listing has in flight: go-zookeeper
// pipelines them on the one connection, so a listing of n records costs
// about n/listConcurrency round trips instead of n.
const listConcurrency = 64

// getAll reads the records ids with get, concurrently, in ids' order,
// skipping records deleted meanwhile.
func getAll[T any](ctx context.Context, ids []string, get func(context.Context, string) (*T, error)) ([]*T, error) {
	out := make([]*T, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, listConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = get(ctx, id)
		})
	}
	wg.Wait()
	res := out[:0]
	for i, v := range out {
		if errors.Is(errs[i], ErrNoNode) {
			continue
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
		res = append(res, v)
	}
	return res, nil
}
