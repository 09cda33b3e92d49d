// Standard headers that the generic kernel code uses, included at global
// scope before any ISA namespace is opened.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif
