// Stands in for the CUDA header on the host (see ../cuda_host.h).
#pragma once
#include "cuda_host.h"
