package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"sync"
)

// Upload bodies are generated, not read from files: the load generator must
// cost as little CPU as possible (it shares the two cores with what it
// measures), yet every upload must have content of its own, so that bytes
// swapped, repeated or crossed between two uploads show up in the hash.
//
// A body is a sequence of 64 KiB blocks. Block i of the stream with seed s is
// one of the blocks of a fixed random pool, chosen by (s, i), with its first
// 16 bytes replaced by s and i: a memcpy per block, and no two blocks of any
// two streams alike. The content depends only on the seed and the position,
// so the first n bytes of a stream are the same whatever its length.
const (
	payloadBlock = 64 << 10
	poolBlocks   = 128
	stampLen     = 16
)

var payloadPool = func() []byte {
	pool := make([]byte, payloadBlock*poolBlocks)
	// A fixed seed: runs are reproducible, and the pool is random enough that
	// nothing on the way can compress it.
	_, _ = rand.NewChaCha8([32]byte{'t', 'u', 's', 'p', 'r', 'o', 'x', 'y'}).Read(pool)
	return pool
}()

// payload is the stream with seed seed, from byte pos up to byte end.
type payload struct {
	seed     uint64
	pos, end int64
}

func newPayload(seed uint64, from, to int64) *payload {
	return &payload{seed: seed, pos: from, end: to}
}

// Read fills p with the stream. It deliberately has no WriteTo, like an
// *os.File read by a browser: the HTTP client copies it as it would copy a
// file.
func (p *payload) Read(b []byte) (int, error) {
	if p.pos >= p.end {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.end-p.pos))
	b = b[:n]
	for len(b) > 0 {
		block := uint64(p.pos / payloadBlock)
		within := int(p.pos % payloadBlock)
		poolIndex := (block*37 + p.seed*11) % poolBlocks
		src := payloadPool[poolIndex*payloadBlock+uint64(within) : (poolIndex+1)*payloadBlock]
		copied := copy(b, src)
		if within < stampLen {
			var stamp [stampLen]byte
			binary.LittleEndian.PutUint64(stamp[:8], p.seed)
			binary.LittleEndian.PutUint64(stamp[8:], block)
			copy(b[:copied], stamp[within:])
		}
		b = b[copied:]
		p.pos += int64(copied)
	}
	return n, nil
}

// payloadKey names the first size bytes of the stream with seed seed.
type payloadKey struct {
	seed uint64
	size int64
}

// hashCache holds the expected SHA-256 of payloads, computed before the
// measurements start: hashing gigabytes while measuring would steal CPU from
// the targets.
type hashCache struct {
	mu   sync.Mutex
	sums map[payloadKey]string
}

func newHashCache() *hashCache { return &hashCache{sums: make(map[payloadKey]string)} }

// precompute hashes every key, on as many goroutines as there are cores.
func (c *hashCache) precompute(keys []payloadKey, workers int) {
	todo := make(chan payloadKey)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for key := range todo {
				c.sum(key)
			}
		})
	}
	for _, key := range keys {
		todo <- key
	}
	close(todo)
	wg.Wait()
}

// sum returns the hex SHA-256 of the payload, computing it if needed.
func (c *hashCache) sum(key payloadKey) string {
	c.mu.Lock()
	sum, ok := c.sums[key]
	c.mu.Unlock()
	if ok {
		return sum
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	_, _ = io.CopyBuffer(h, newPayload(key.seed, 0, key.size), buf)
	sum = hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	c.sums[key] = sum
	c.mu.Unlock()
	return sum
}
