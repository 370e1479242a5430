package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/stat's CPU columns. It is part of the Linux
// user ABI (USER_HZ, what `getconf CLK_TCK` prints): 100 on every
// mainstream architecture, whatever the kernel's internal HZ.
const userHZ = 100

// SystemCPU maps a /proc/stat CPU line name ("cpu" for the total, "cpu0",
// "cpu1", ...) to the nanoseconds that CPU was busy since boot, at the
// 10 ms resolution of /proc/stat.
type SystemCPU map[string]uint64

// SystemCPU reads /proc/stat.
func (f FS) SystemCPU() (SystemCPU, error) {
	data, err := os.ReadFile(filepath.Join(f.root, "stat"))
	if err != nil {
		return nil, fmt.Errorf("procfs: %w", err)
	}
	s, err := ParseStat(data)
	if err != nil {
		return nil, fmt.Errorf("procfs: %s/stat: %w", f.root, err)
	}
	return s, nil
}

// ParseStat reads the cpu lines of /proc/stat. Busy time is user + nice +
// system + irq + softirq + steal; idle and iowait are not busy, and guest
// time is already inside user.
func ParseStat(data []byte) (SystemCPU, error) {
	out := SystemCPU{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20) // the intr line is long
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if len(fields) < 9 {
			return nil, fmt.Errorf("%s line has %d fields, want at least 9", fields[0], len(fields))
		}
		var busy uint64
		for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
			v, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s field %d %q: %w", fields[0], i, fields[i], err)
			}
			busy += v
		}
		out[fields[0]] = busy * (1e9 / userHZ)
	}
	return out, sc.Err()
}

// BusyDelta returns the busy nanoseconds of the named CPU lines between two
// readings, summed.
func BusyDelta(start, end SystemCPU, cpus ...string) uint64 {
	var sum uint64
	for _, c := range cpus {
		if end[c] >= start[c] {
			sum += end[c] - start[c]
		}
	}
	return sum
}
