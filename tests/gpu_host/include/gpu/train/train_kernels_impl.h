// Stands in for gpu/train/train_kernels_impl.h when attention_flash.cu runs on the host: the
// kernels need none of the trainer's state (see ../../../cuda_host.h).
#pragma once
#include <cstdint>

#include "cuda_host.h"
