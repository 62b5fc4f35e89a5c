/* A stand-in for bcryptprimitives.dll, which wine 8.0 lacks: Rust's std (1.78 and later)
 * imports ProcessPrng from it, and without it every Rust .exe dies before main under wine.
 * Only for running tern's Windows build in CI; real Windows has the DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG piece = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}
