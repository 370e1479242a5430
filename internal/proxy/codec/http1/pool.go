package http1

import "sync"

// Buffers come in power-of-two size classes from 4 KiB to 256 KiB, each with
// its own sync.Pool. Items are *[]byte so that Put does not allocate. A
// request for more than the largest class is served by make and never
// pooled.
const (
	minClassShift = 12 // 4 KiB
	numClasses    = 7  // 4, 8, 16, 32, 64, 128, 256 KiB
	maxClassSize  = 1 << (minClassShift + numClasses - 1)
)

var bufPools [numClasses]sync.Pool

// classOf returns the index of the smallest class holding n bytes, or -1
// when n is larger than every class.
func classOf(n int) int {
	for i := 0; i < numClasses; i++ {
		if n <= 1<<(minClassShift+i) {
			return i
		}
	}
	return -1
}

// getBuf returns a buffer with len >= n (the size of its class).
func getBuf(n int) *[]byte {
	i := classOf(n)
	if i < 0 {
		b := make([]byte, n)
		return &b
	}
	if p, ok := bufPools[i].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 1<<(minClassShift+i))
	return &b
}

// putBuf returns a buffer obtained from getBuf to its pool.
func putBuf(p *[]byte) {
	if p == nil {
		return
	}
	n := cap(*p)
	i := classOf(n)
	if i < 0 || n != 1<<(minClassShift+i) {
		return // oversized: left to the GC
	}
	*p = (*p)[:n]
	bufPools[i].Put(p)
}
