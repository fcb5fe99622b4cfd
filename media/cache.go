package media

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Cache is a per-replica disk cache of downloaded files, bounded in bytes: the least recently used
// files are removed first. Files are named by a hash of their key, so nothing a provider sends
// becomes a path. Safe for concurrent use; a file removed while served stays readable to its reader.
type Cache struct {
	dir string
	max int64

	mu    sync.Mutex
	ll    *list.List // front: most recently used
	items map[string]*list.Element
	size  int64
}

type cacheEntry struct {
	name string
	size int64
}

const tmpSuffix = ".part"

// OpenCache opens (creating it) a cache directory bounded to max bytes, taking in the files an
// earlier run left, oldest first out.
func OpenCache(dir string, max int64) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cache{dir: dir, max: max, ll: list.New(), items: map[string]*list.Element{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type old struct {
		name string
		size int64
		mod  int64
	}
	var found []old
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasSuffix(e.Name(), tmpSuffix) || !cacheName(e.Name()) {
			if strings.HasSuffix(e.Name(), tmpSuffix) {
				os.Remove(filepath.Join(dir, e.Name())) // a download cut short by a crash
			}
			continue
		}
		if info, err := e.Info(); err == nil {
			found = append(found, old{e.Name(), info.Size(), info.ModTime().UnixNano()})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mod < found[j].mod })
	for _, f := range found {
		c.items[f.name] = c.ll.PushFront(&cacheEntry{f.name, f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evict()
	c.mu.Unlock()
	return c, nil
}

func cacheName(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func cacheFile(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Open returns the cached file of key and its size, marking it used; ok is false on a miss.
func (c *Cache) Open(key string) (f *os.File, size int64, ok bool) {
	name := cacheFile(key)
	c.mu.Lock()
	el, hit := c.items[name]
	if hit {
		c.ll.MoveToFront(el)
	}
	c.mu.Unlock()
	if !hit {
		return nil, 0, false
	}
	f, err := os.Open(filepath.Join(c.dir, name))
	if err != nil {
		c.drop(name)
		return nil, 0, false
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, false
	}
	return f, info.Size(), true
}

// Temp is a new file in the cache's directory to download into, then Put.
func (c *Cache) Temp() (*os.File, error) { return os.CreateTemp(c.dir, "dl-*"+tmpSuffix) }

// Put moves a complete temporary file into the cache under key, then removes the least recently
// used files over the bound. The newest file always stays, so a file larger than the bound can
// still be served; the cache then holds at most the bound plus that file.
func (c *Cache) Put(key, tmpPath string, size int64) error {
	name := cacheFile(key)
	if err := os.Rename(tmpPath, filepath.Join(c.dir, name)); err != nil {
		os.Remove(tmpPath)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[name]; ok {
		c.size -= el.Value.(*cacheEntry).size
		c.ll.Remove(el)
	}
	c.items[name] = c.ll.PushFront(&cacheEntry{name, size})
	c.size += size
	c.evict()
	return nil
}

// Size is the bytes the cache holds.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *Cache) evict() {
	for c.size > c.max && c.ll.Len() > 1 {
		el := c.ll.Back()
		e := el.Value.(*cacheEntry)
		c.ll.Remove(el)
		delete(c.items, e.name)
		c.size -= e.size
		os.Remove(filepath.Join(c.dir, e.name))
	}
}

func (c *Cache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[name]; ok {
		c.size -= el.Value.(*cacheEntry).size
		c.ll.Remove(el)
		delete(c.items, name)
	}
}
