package oggtest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Every page carries the right sequence number, a checksum that verifies, and the granule position
// of the samples so far; the first page is the Opus header.
func TestPagesAreWellFormed(t *testing.T) {
	data := Silence(3)
	var seq uint32
	for len(data) > 0 {
		if !bytes.HasPrefix(data, []byte("OggS")) || len(data) < 27 {
			t.Fatalf("page %d: no capture pattern", seq)
		}
		n := int(data[26])
		size := 27 + n
		for _, s := range data[27 : 27+n] {
			size += int(s)
		}
		page := append([]byte(nil), data[:size]...)
		want := binary.LittleEndian.Uint32(page[22:])
		binary.LittleEndian.PutUint32(page[22:], 0)
		if got := checksum(page); got != want {
			t.Fatalf("page %d: checksum %x, header says %x", seq, got, want)
		}
		if got := binary.LittleEndian.Uint32(page[18:]); got != seq {
			t.Fatalf("page %d numbered %d", seq, got)
		}
		if seq == 0 && !bytes.Equal(page[28:36], []byte("OpusHead")) {
			t.Fatal("the first page is not the Opus header")
		}
		if seq == 4 && binary.LittleEndian.Uint64(page[6:]) != 312+3*960 {
			t.Fatalf("last granule %d", binary.LittleEndian.Uint64(page[6:]))
		}
		data = data[size:]
		seq++
	}
	if seq != 5 {
		t.Fatalf("%d pages, want header, tags and 3 audio pages", seq)
	}
}
