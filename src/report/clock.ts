// The time of day as tcpdump prints it, HH:MM:SS.uuuuuu in local time: one function for every output that
// prints one (a packet's header, compare's frames, merge's trips). Pure.

/** us: µs since the epoch. A fraction (a time shifted by an estimated clock offset has one) is cut off, as
 *  tcpdump's microseconds are. */
export function clock(us: number): string {
  const whole = Math.floor(us);
  const seconds = Math.floor(whole / 1e6);
  const d = new Date(seconds * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(whole - seconds * 1e6, 6)}`;
}
