package translate

import (
	"slices"
	"sort"
)

// slot is an item of a sorted output together with the service it came from and that service's
// generation at the time; once the service's gen moves on, the slot is stale.
type slot[T any] struct {
	owner *entry
	gen   uint64
	v     T
}

func (s *slot[T]) live() bool { return s.gen == s.owner.gen }

// sortedIndex keeps the items of all services in one sorted slice. Replacing the items of a few
// services costs sorting their new items, a binary search for each, and one pass that copies the
// live slots: no comparisons between unchanged items.
type sortedIndex[T any] struct {
	cmp   func(a, b T) int
	slots []slot[T]
	spare []slot[T] // the previous slots array, reused for the next merge
	items []T       // the current output; a new slice after every change, as callers may hold the old one
}

func newSortedIndex[T any](cmp func(a, b T) int) *sortedIndex[T] {
	return &sortedIndex[T]{cmp: cmp, items: []T{}}
}

// update merges add (new slots) into the index, dropping stale slots. With nothing to add and
// stale false, the index is unchanged.
func (x *sortedIndex[T]) update(add []slot[T], stale bool) {
	if len(add) == 0 && !stale {
		return
	}
	slices.SortStableFunc(add, func(a, b slot[T]) int { return x.cmp(a.v, b.v) })
	out := x.spare[:0]
	if cap(out) < len(x.slots)+len(add) {
		out = make([]slot[T], 0, len(x.slots)+len(add)+len(x.slots)/8)
	}
	i := 0
	for _, a := range add {
		// Old slots (stale ones included: they are still in order) up to the first one after a.
		p := i + sort.Search(len(x.slots)-i, func(k int) bool { return x.cmp(x.slots[i+k].v, a.v) > 0 })
		out = appendLive(out, x.slots[i:p])
		out = append(out, a)
		i = p
	}
	out = appendLive(out, x.slots[i:])
	clear(x.slots) // the spare array must not keep dropped resources alive
	x.spare, x.slots = x.slots, out
	items := make([]T, len(out))
	for k := range out {
		items[k] = out[k].v
	}
	x.items = items
}

func appendLive[T any](dst, src []slot[T]) []slot[T] {
	for k := range src {
		if src[k].live() {
			dst = append(dst, src[k])
		}
	}
	return dst
}
