// Package oggtest writes Ogg/Opus files (RFC 7845) for tests: WhatsApp voice notes are Ogg/Opus,
// and the tests make theirs from Opus packets (encoded by the browser's WebCodecs, or silent frames
// made here) rather than ship binary fixtures.
package oggtest

import (
	"bytes"
	"encoding/binary"
)

// crcTable is Ogg's CRC-32: polynomial 0x04c11db7, unreflected, initial 0, no final xor.
var crcTable = func() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return &t
}()

func checksum(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^c]
	}
	return crc
}

// Opus runs at 48 kHz whatever the input rate; granule positions count 48 kHz samples.
const rate = 48000

// Write wraps Opus packets of frameSamples samples each (at 48 kHz: 960 for 20 ms) in an Ogg
// stream: an OpusHead page, an OpusTags page, then one page per packet.
func Write(packets [][]byte, frameSamples int, channels int) []byte {
	const preSkip = 312
	var out bytes.Buffer
	serial := uint32(0x43474154) // "CGAT"
	seq := uint32(0)
	page := func(flags byte, granule uint64, packet []byte) {
		var segs []byte
		n := len(packet)
		for n >= 255 {
			segs = append(segs, 255)
			n -= 255
		}
		segs = append(segs, byte(n))
		h := make([]byte, 27, 27+len(segs)+len(packet))
		copy(h, "OggS")
		h[5] = flags
		binary.LittleEndian.PutUint64(h[6:], granule)
		binary.LittleEndian.PutUint32(h[14:], serial)
		binary.LittleEndian.PutUint32(h[18:], seq)
		h[26] = byte(len(segs))
		h = append(h, segs...)
		h = append(h, packet...)
		binary.LittleEndian.PutUint32(h[22:], checksum(h))
		out.Write(h)
		seq++
	}
	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1
	head[9] = byte(channels)
	binary.LittleEndian.PutUint16(head[10:], preSkip)
	binary.LittleEndian.PutUint32(head[12:], rate)
	page(0x02, 0, head)
	tags := []byte("OpusTags")
	vendor := "chatgate oggtest"
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)
	page(0, 0, tags)
	granule := uint64(preSkip)
	for i, p := range packets {
		granule += uint64(frameSamples)
		flags := byte(0)
		if i == len(packets)-1 {
			flags = 0x04
		}
		page(flags, granule, p)
	}
	return out.Bytes()
}

// Silence is n 20 ms Opus frames that decode to silence (CELT-only, fullband, mono: a TOC byte and
// no coded frame, which decoders play as silence), as an Ogg/Opus file of n×20 ms.
func Silence(n int) []byte {
	packets := make([][]byte, n)
	for i := range packets {
		// TOC: config 31 (CELT fullband 20 ms) << 3, mono, one frame: 0xF8; then a zero-length frame.
		packets[i] = []byte{0xF8}
	}
	return Write(packets, 960, 1)
}
