// Stands in for the CUDA header on the host (see ../cuda_host_runtime.h).
#pragma once
#include "cuda_host_runtime.h"
