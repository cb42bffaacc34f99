/* libFuzzer entry for zig/fuzz_decode.zig. Zig instruments the target
 * (-ffuzz) with inline 8-bit counters but emits no module constructor to
 * register them, as clang does: this file does it. (Zig's PC table holds
 * bare PCs, not the (PC, flags) pairs libFuzzer expects, so it is not
 * registered; coverage guidance only needs the counters.) */
#include <stddef.h>
#include <stdint.h>

int libforks_fuzz_decode(const uint8_t *data, size_t len);
void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop);

extern uint8_t __start___sancov_cntrs[], __stop___sancov_cntrs[];

__attribute__((constructor)) static void register_zig_coverage(void) {
  __sanitizer_cov_8bit_counters_init(__start___sancov_cntrs, __stop___sancov_cntrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  libforks_fuzz_decode(data, len);
  return 0;
}
