// What a failed file operation means, in words a user acts on rather than an errno. ENOENT is left to the
// caller: "no such file" to a reader, "no such directory" to a writer.

export function fileFailure(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'EISDIR':
      return 'it is a directory';
    case 'EACCES':
    case 'EROFS':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on the device (ENOSPC)';
    case 'EFBIG':
      return 'the file size limit was reached (EFBIG, ulimit -f)';
    case 'EDQUOT':
      return 'the disk quota was reached (EDQUOT)';
    case 'EIO':
      return 'an I/O error (EIO)';
    default:
      return (e as Error).message;
  }
}

/** A write's failure: its directory missing, or fileFailure's words. */
export const writeFailure = (e: unknown): string =>
  (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : fileFailure(e);
