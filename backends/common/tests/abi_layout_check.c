/* The C compiler, too, must lay the ABI structs out as libclang did for the C# bindings:
   compiling this file runs the generated static_asserts in C11 mode. */
#include "flash_attn_abi_layout.g.h"

int fa_abi_layout_checked_in_c(void) { return FA_ABI_VERSION; }
