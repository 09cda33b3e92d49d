#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace seqcore {

namespace {

bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// The AVX-512 kernels use F, DQ, BW and VL. __builtin_cpu_supports also
// checks that the OS saves the wider registers (XCR0).
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

// AVX-VNNI (vpdpbusd on 256-bit vectors) on top of AVX2.
bool cpu_has_avx2_vnni() { return cpu_has_avx2() && __builtin_cpu_supports("avxvnni"); }

// AVX512-VNNI (vpdpbusd) on top of AVX-512.
bool cpu_has_avx512_vnni() { return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni"); }

// AVX512-BF16 (vdpbf16ps, vcvtne2ps2bf16) on top of those (every CPU with
// it has VNNI, which its kernels use for "int8").
bool cpu_has_avx512_bf16() { return cpu_has_avx512_vnni() && __builtin_cpu_supports("avx512bf16"); }

// AMX-BF16 tiles on top of AVX512-BF16, and Linux's permission to use the
// tile data (asked for once; granted for the whole process).
bool os_grants_amx() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  static const bool granted = syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
#else
  return false;
#endif
}

// (and AMX-INT8's, which its kernels use for "int8": every CPU with AMX so
// far has both)
bool cpu_has_amx_bf16() {
  return cpu_has_avx512_bf16() && __builtin_cpu_supports("amx-tile") &&
         __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("amx-int8") && os_grants_amx();
}

// The kernels of instruction set `name` where this build has them (CMake's
// SEQCORE_ISAS: all of them but in a build for one machine), else null.
const IsaKernels* built(const std::string& name) {
#ifdef SEQCORE_BUILT_avx2
  if (name == "avx2") return &avx2::kernels();
#endif
#ifdef SEQCORE_BUILT_avx2_vnni
  if (name == "avx2_vnni") return &avx2_vnni::kernels();
#endif
#ifdef SEQCORE_BUILT_avx512
  if (name == "avx512") return &avx512::kernels();
#endif
#ifdef SEQCORE_BUILT_avx512_vnni
  if (name == "avx512_vnni") return &avx512_vnni::kernels();
#endif
#ifdef SEQCORE_BUILT_avx512_bf16
  if (name == "avx512_bf16") return &avx512_bf16::kernels();
#endif
#ifdef SEQCORE_BUILT_amx_bf16
  if (name == "amx_bf16") return &amx_bf16::kernels();
#endif
  (void)name;
  return nullptr;
}

// The kernels of `name` where this CPU runs them and this build has them.
const IsaKernels* kernels_by_name(const std::string& name) {
  if (name == "scalar") return &scalar::kernels();
  if (name == "avx2") return cpu_has_avx2() ? built(name) : nullptr;
  if (name == "avx2_vnni") return cpu_has_avx2_vnni() ? built(name) : nullptr;
  if (name == "avx512") return cpu_has_avx512() ? built(name) : nullptr;
  if (name == "avx512_vnni") return cpu_has_avx512_vnni() ? built(name) : nullptr;
  if (name == "avx512_bf16") return cpu_has_avx512_bf16() ? built(name) : nullptr;
  if (name == "amx_bf16") return cpu_has_amx_bf16() ? built(name) : nullptr;
  throw std::invalid_argument("SEQCORE_ISA: unknown instruction set '" + name +
                              "'; expected one of scalar, avx2, avx2_vnni, avx512, avx512_vnni, avx512_bf16, "
                              "amx_bf16");
}

const IsaKernels* choose_at_startup() {
  const char* env = std::getenv("SEQCORE_ISA");
  if (env != nullptr && env[0] != '\0') {
    const IsaKernels* k = kernels_by_name(env);
    if (k == nullptr) {
      throw std::invalid_argument(std::string("SEQCORE_ISA=") + env +
                                  ": this CPU does not support that instruction set "
                                  "(or this build left it out: CMake's SEQCORE_ISAS)");
    }
    return k;
  }
  for (const char* name : {"amx_bf16", "avx512_bf16", "avx512_vnni", "avx512", "avx2_vnni", "avx2"}) {
    const IsaKernels* k = kernels_by_name(name);
    if (k != nullptr) return k;
  }
  return &scalar::kernels();
}

std::atomic<const IsaKernels*> g_active{nullptr};

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> out{"scalar"};
  for (const char* name : {"avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16", "amx_bf16"})
    if (kernels_by_name(name) != nullptr) out.push_back(name);
  return out;
}

const IsaKernels& active_kernels() {
  const IsaKernels* k = g_active.load(std::memory_order_acquire);
  if (k == nullptr) {
    k = choose_at_startup();
    g_active.store(k, std::memory_order_release);
  }
  return *k;
}

void set_isa(const std::string& name) {
  const IsaKernels* k = kernels_by_name(name);
  if (k == nullptr) {
    throw std::invalid_argument("isa: this CPU does not support '" + name +
                                "' (or this build left it out: CMake's SEQCORE_ISAS)");
  }
  g_active.store(k, std::memory_order_release);
}

}  // namespace seqcore
