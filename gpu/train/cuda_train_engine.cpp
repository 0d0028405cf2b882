#include "gpu/train/cuda_train_engine.h"

#include <cuda_bf16.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "core/backend/registry.h"
#include "core/net/rank_group.h"
#include "core/train/rank_transport.h"
#include "gpu/cuda_check.h"
#include "gpu/op_times.h"
#include "gpu/pipeline/device_transport.h"
#include "gpu/pipeline/rank_device_transport.h"
#include "gpu/train/cuda_stage.h"

namespace lms::gpu::train {

using lms::train::MessageKind;
using lms::train::PipeOp;
using lms::train::StepReport;
using lms::train::TimelineEvent;

Result<std::vector<int>> ParseCudaTrainDevices(const std::string& device) {
  LMS_ASSIGN_OR_RETURN(DeviceList list, ParseDeviceList(device));
  if (list.kind != "cuda") return Status::InvalidArgument("not a CUDA device: '" + device + "'");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return Status::NotFound("no CUDA device is usable for training");
  }
  if (list.indices.empty()) {
    for (int i = 0; i < count; ++i) list.indices.push_back(i);
  }
  for (int id : list.indices) {
    if (id >= count) return Status::NotFound(fmt::format("no CUDA device {} ({} present)", id, count));
  }
  return list.indices;
}

namespace {

std::mutex& TransportMutex() {
  static std::mutex mu;
  return mu;
}
DeviceTransportFactory& TransportFactory() {
  static DeviceTransportFactory f;
  return f;
}
RankTransportFactory& RankFactory() {
  static RankTransportFactory f;
  return f;
}

// Whether every rank of the group trains on a GPU no other rank uses (NCCL refuses two ranks on
// one GPU). Collective: every rank sends the others its host name and GPU's PCI bus id.
Result<bool> RanksOnDistinctGpus(net::RankGroup& ranks, int gpu) {
  char bus[32] = {};
  LMS_CUDA_RETURN_IF_ERROR(cudaDeviceGetPCIBusId(bus, sizeof bus, gpu));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::string mine = std::string(host) + "/" + bus;
  std::vector<std::string> all;
  for (int r = 0; r < ranks.world(); ++r) {
    std::vector<uint8_t> b(mine.begin(), mine.end());
    LMS_RETURN_IF_ERROR(ranks.Broadcast(b, r));
    all.emplace_back(b.begin(), b.end());
  }
  std::sort(all.begin(), all.end());
  return std::adjacent_find(all.begin(), all.end()) == all.end();
}

// A range [begin, end) of the flat parameter vector held on one GPU. An owned range has its
// gradients and optimizer state there (that GPU updates it); the tied head's copy of the
// embedding on the last chunk's GPU has weights only.
struct Segment {
  int64_t begin = 0, end = 0;
  bool owned = true;
  DeviceBuffer<float> p, g, m, v;
  DeviceBuffer<__nv_bfloat16> p_bf16;  // kBF16 only
  DeviceBuffer<uint8_t> decay;
  int64_t size() const { return end - begin; }
};

// One GPU: the parameter ranges its chunks use. It updates the `owned` chunk ranges (one
// gradient norm partial each) that lie in its owned segments.
struct Gpu {
  int id = 0;
  int dev = 0;  // the first pipeline device on it: its stream runs the optimizer
  std::vector<Segment> segs;
  std::vector<std::pair<int64_t, int64_t>> owned;
  DeviceBuffer<double> sums;  // Σ g² per owned range
  DeviceParams view;          // what the chunks read: every segment
  Segment* Holding(int64_t begin, int64_t end) {
    for (Segment& s : segs)
      if (begin >= s.begin && end <= s.end) return &s;
    return nullptr;
  }
  int64_t bytes() const {
    int64_t b = 0;
    for (const Segment& s : segs) b += s.p.bytes() + s.g.bytes() + s.m.bytes() + s.v.bytes() + s.p_bf16.bytes() + s.decay.bytes();
    return b;
  }
};

// One pipeline device: a host thread's stream on one of the GPUs.
struct Dev {
  int gpu = 0;  // index into gpus_
  cudaStream_t stream = nullptr;
  std::unique_ptr<TrainKernels> kernels;
  DeviceBuffer<float> in, out;  // (rows, d): what the transport delivers and what it sends
  DeviceBuffer<double> loss_sum;
  DeviceBuffer<int64_t> loss_count;
};

struct ScopedDevice {
  explicit ScopedDevice(int id) { cudaGetDevice(&prev); cudaSetDevice(id); }
  ~ScopedDevice() { cudaSetDevice(prev); }
  int prev = 0;
};

class Engine final : public CudaTrainEngine {
 public:
  Engine(const lms::train::TrainEngineSpec& spec, const lms::train::ParamLayout& layout)
      : spec_(spec), layout_(layout) {}
  ~Engine() override {
    for (auto& d : devs_) {
      if (!d.stream) continue;
      ScopedDevice sd(gpus_[static_cast<size_t>(d.gpu)].id);
      cudaStreamSynchronize(d.stream);
      d.kernels.reset();
    }
    stages_.clear();
    transport_.reset();
    for (auto& d : devs_) {
      if (!d.stream) continue;
      ScopedDevice sd(gpus_[static_cast<size_t>(d.gpu)].id);
      d.in.Reset();
      d.out.Reset();
      d.loss_sum.Reset();
      d.loss_count.Reset();
      cudaStreamDestroy(d.stream);
    }
    for (auto& g : gpus_) {
      ScopedDevice sd(g.id);
      g = Gpu{};
    }
  }

  Status Init(const std::vector<int>& ids, GemmPrecision precision);

  std::string Describe() const override { return describe_; }
  int stages() const override { return S_; }
  int chunks() const override { return spec_.pipeline.chunks; }
  CudaStage& stage(int chunk) override { return *stages_[static_cast<size_t>(chunk)]; }
  int64_t activation_bytes() const override { return act_bytes_; }
  Result<std::vector<OpTimeTotal>> OpTimeTotals() override {
    std::vector<OpTimeTotal> all;
    LMS_RETURN_IF_ERROR(ForEachOpTimes([&all](OpTimes& t) {
      LMS_RETURN_IF_ERROR(t.Collect());
      MergeOpTimes(t.Totals(), all);
      return Status::Ok();
    }));
    return all;
  }
  void ResetOpTimes() override {
    (void)ForEachOpTimes([](OpTimes& t) {
      t.Reset();
      return Status::Ok();
    });
  }
  std::vector<int64_t> parameter_bytes() const override {
    std::vector<int64_t> b;
    for (const Gpu& g : gpus_) b.push_back(g.bytes());
    return b;
  }

  Status SetState(const std::vector<float>& params, const std::vector<float>* m, const std::vector<float>* v) override;
  Status GetParams(std::vector<float>& params) const override { return Gather(&Segment::p, params); }
  Status GetMoments(std::vector<float>& m, std::vector<float>& v) const override {
    LMS_RETURN_IF_ERROR(Gather(&Segment::m, m));
    return Gather(&Segment::v, v);
  }
  Status GetGrads(std::vector<float>& grads) const override { return Gather(&Segment::g, grads); }
  Status ZeroGrads() override;
  Result<StepReport> ForwardBackward(const int32_t* inputs, const int32_t* targets, float loss_scale) override {
    return Run(inputs, targets, loss_scale, true);
  }
  Result<StepReport> Forward(const int32_t* inputs, const int32_t* targets) override {
    return Run(inputs, targets, 1.0f, false);
  }
  Result<double> OptimizerStep(int64_t step) override;

 private:
  Gpu& GpuOf(int chunk) { return gpus_[static_cast<size_t>(devs_[static_cast<size_t>(chunk % S_)].gpu)]; }
  // Whether this process runs pipeline device s (all of them unless the run spans processes).
  bool Local(int s) const { return ranks_ == nullptr || s == ranks_->rank(); }
  // Multi-process: the loss, busy times and peaks of every rank's devices, on every rank.
  Status ShareReport(StepReport& rep) const;
  // Multi-process: the tied head's gradient share to rank 0, or the updated embedding to the
  // head's rank (host-staged over the group).
  Status ExchangeHeadGrad();
  Status ExchangeEmbedding();
  Status Gather(DeviceBuffer<float> Segment::*field, std::vector<float>& out) const;
  Status RefreshBf16(Gpu& g, int64_t begin, int64_t end);
  // f(times) for each local stage's op times (LMS_CUDA_OP_TIMES), on its GPU.
  template <class F>
  Status ForEachOpTimes(F f) {
    for (auto& d : devs_) {
      OpTimes* t = d.kernels ? d.kernels->op_times() : nullptr;
      if (!t) continue;
      ScopedDevice sd(gpus_[static_cast<size_t>(d.gpu)].id);
      LMS_RETURN_IF_ERROR(f(*t));
    }
    return Status::Ok();
  }
  Result<StepReport> Run(const int32_t* inputs, const int32_t* targets, float loss_scale, bool backward);

  lms::train::TrainEngineSpec spec_;
  const lms::train::ParamLayout& layout_;
  std::string describe_;
  GemmPrecision precision_ = GemmPrecision::kBF16;
  net::RankGroup* ranks_ = nullptr;  // a multi-process run: this process runs device ranks_->rank()
  int S_ = 1, C_ = 1;
  std::vector<Gpu> gpus_;
  std::vector<Dev> devs_;
  std::vector<std::unique_ptr<CudaStage>> stages_;
  Result<std::unique_ptr<DeviceTransport>> MakeTransport() {
    if (make_multi_) return make_multi_();
    return std::unique_ptr<DeviceTransport>(std::make_unique<InProcessDeviceTransport>());
  }

  std::function<Result<std::unique_ptr<DeviceTransport>>()> make_multi_;
  std::unique_ptr<DeviceTransport> transport_;
  Status broken_;  // a transport could not be remade after a failed step
  DeviceBuffer<float> head_grad_;       // the last chunk's share of the tied embedding gradient (C > 1)
  DeviceBuffer<float> head_grad_peer_;  // its copy on chunk 0's GPU when that is another GPU
  int64_t act_bytes_ = 0;
};

Status Engine::Init(const std::vector<int>& ids, GemmPrecision precision) {
  const auto& po = spec_.pipeline;
  C_ = static_cast<int>(po.boundaries.size()) - 1;
  const int V = po.chunks;
  if (C_ < 1 || V < 1 || C_ % V != 0) return Status::InvalidArgument("the pipeline's boundaries do not fit its chunks");
  S_ = C_ / V;
  const int M = po.microbatches;
  precision_ = precision;
  ranks_ = spec_.ranks && spec_.ranks->world() > 1 ? spec_.ranks : nullptr;
  if (ranks_ && ranks_->world() != S_) {
    return Status::InvalidArgument(fmt::format("{} processes train a pipeline of {} stages: a multi-process run has one "
                                               "stage per process", ranks_->world(), S_));
  }
  // GPUs used: pipeline device s runs on ids[s % |ids|]; in a multi-process run this process's
  // one device runs on ids[0].
  const int G = ranks_ ? 1 : std::min<int>(static_cast<int>(ids.size()), S_);
  gpus_.resize(static_cast<size_t>(G));
  std::string names;
  for (int i = 0; i < G; ++i) {
    gpus_[static_cast<size_t>(i)].id = ids[static_cast<size_t>(i)];
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, ids[static_cast<size_t>(i)]) == cudaSuccess) {
      names += fmt::format("{}{} {}", i ? ", " : "", ids[static_cast<size_t>(i)], prop.name);
    }
  }
  describe_ = fmt::format("cuda ({}), {} matrix products, {} attention", names, GemmPrecisionName(precision),
                          UseFlashAttention(precision, spec_.shape, spec_.pipeline.micro_batch_size) ? "flash"
                                                                                            : "materialized");
  if (ranks_) describe_ += fmt::format(", rank {} of {}", ranks_->rank(), ranks_->world());
  for (int i = 0; i < G; ++i) gpus_[static_cast<size_t>(i)].dev = ranks_ ? ranks_->rank() : i;

  std::vector<uint8_t> decay(static_cast<size_t>(layout_.total), 0);
  for (const auto* t : layout_.All()) {
    if (t->matrix) std::fill_n(decay.begin() + t->offset, t->size(), uint8_t{1});
  }
  for (int c = 0; c < C_; ++c) {
    if (!Local(c % S_)) continue;
    gpus_[static_cast<size_t>(ranks_ ? 0 : (c % S_) % G)].owned.push_back(
        layout_.StageRange(po.boundaries[static_cast<size_t>(c)], po.boundaries[static_cast<size_t>(c) + 1], c == 0, c == C_ - 1));
  }
  // Each GPU's segments: its chunks' ranges, adjacent ones merged, and a weights-only copy of
  // the tied embedding where the head's chunk is on another GPU than the embedding's.
  for (auto& g : gpus_) {
    std::vector<std::pair<int64_t, int64_t>> ranges = g.owned;
    std::sort(ranges.begin(), ranges.end());
    for (const auto& [b, e] : ranges) {
      if (!g.segs.empty() && g.segs.back().end == b) {
        g.segs.back().end = e;
      } else {
        g.segs.emplace_back();
        g.segs.back().begin = b;
        g.segs.back().end = e;
      }
    }
  }
  const bool tied_copy = ranks_ ? (C_ > 1 && Local((C_ - 1) % S_) && !Local(0)) : ((C_ - 1) % S_ % G != 0);
  const int G_last = ranks_ ? 0 : (C_ - 1) % S_ % G;
  if (spec_.shape.tied && tied_copy) {
    Segment copy;
    copy.begin = layout_.token_embd.offset;
    copy.end = layout_.token_embd.offset + layout_.token_embd.size();
    copy.owned = false;
    gpus_[static_cast<size_t>(G_last)].segs.push_back(std::move(copy));
  }
  for (auto& g : gpus_) {
    ScopedDevice sd(g.id);
    for (Segment& sg : g.segs) {
      const int64_t n = sg.size();
      LMS_RETURN_IF_ERROR(sg.p.Allocate(n, "training parameters"));
      if (precision == GemmPrecision::kBF16) LMS_RETURN_IF_ERROR(sg.p_bf16.Allocate(n, "bf16 weights"));
      if (sg.owned) {
        for (auto* b : {&sg.g, &sg.m, &sg.v}) LMS_RETURN_IF_ERROR(b->Allocate(n, "gradients and optimizer state"));
        LMS_RETURN_IF_ERROR(sg.decay.Allocate(n, "weight-decay mask"));
        LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(sg.decay.get(), decay.data() + sg.begin, static_cast<size_t>(n),
                                            cudaMemcpyHostToDevice));
      }
      g.view.segments.push_back(ParamSegment{sg.begin, sg.end, sg.p.get(), sg.p_bf16.get(), sg.g.get()});
    }
    LMS_RETURN_IF_ERROR(g.sums.Allocate(static_cast<int64_t>(g.owned.size()), "norm partials"));
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // the masks' copies from pageable memory have landed
  }

  const int64_t rows = int64_t{po.micro_batch_size} * spec_.shape.seq_len, d = spec_.shape.d_model;
  devs_.resize(static_cast<size_t>(S_));
  for (int s = 0; s < S_; ++s) {
    Dev& dv = devs_[static_cast<size_t>(s)];
    if (!Local(s)) {
      dv.gpu = -1;  // another process's
      continue;
    }
    dv.gpu = ranks_ ? 0 : s % G;
    ScopedDevice sd(gpus_[static_cast<size_t>(dv.gpu)].id);
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&dv.stream, cudaStreamNonBlocking));
    LMS_ASSIGN_OR_RETURN(dv.kernels, TrainKernels::Create(dv.stream, precision));
    LMS_RETURN_IF_ERROR(dv.in.Allocate(rows * d, "pipeline buffers"));
    LMS_RETURN_IF_ERROR(dv.out.Allocate(rows * d, "pipeline buffers"));
    LMS_RETURN_IF_ERROR(dv.loss_sum.Allocate(1, "loss"));
    LMS_RETURN_IF_ERROR(dv.loss_count.Allocate(1, "loss"));
  }
  // The in-process transport's parcels come from each GPU's default memory pool, which other
  // GPUs may read only when the pool says so (peer access does not cover pools).
  for (const Gpu& a : gpus_) {
    for (const Gpu& b : gpus_) {
      int can = 0;
      if (a.id == b.id || cudaDeviceCanAccessPeer(&can, b.id, a.id) != cudaSuccess || !can) continue;
      cudaMemPool_t pool = nullptr;
      LMS_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, a.id));
      cudaMemAccessDesc access{};
      access.location.type = cudaMemLocationTypeDevice;
      access.location.id = b.id;
      access.flags = cudaMemAccessFlagsProtReadWrite;
      LMS_CUDA_RETURN_IF_ERROR(cudaMemPoolSetAccess(pool, &access, 1));
    }
  }
  // Activation slots: the most micro-batches of a chunk alive at once under the schedule.
  const auto ops = lms::train::MakeSchedule(po.schedule, S_, M, V);
  std::vector<int> slots(static_cast<size_t>(C_), 1);
  for (int s = 0; s < S_; ++s) {
    std::vector<int> live(static_cast<size_t>(V), 0);
    for (const PipeOp& op : ops[static_cast<size_t>(s)]) {
      int& n = live[static_cast<size_t>(op.chunk)];
      n += op.forward ? 1 : -1;
      int& most = slots[static_cast<size_t>(op.chunk * S_ + s)];
      most = std::max(most, n);
    }
  }
  for (int c = 0; c < C_; ++c) {
    if (!Local(c % S_)) {
      stages_.push_back(nullptr);
      continue;
    }
    Dev& dv = devs_[static_cast<size_t>(c % S_)];
    ScopedDevice sd(gpus_[static_cast<size_t>(dv.gpu)].id);
    auto st = CudaStage::Create(spec_.shape, layout_, po.boundaries[static_cast<size_t>(c)],
                                po.boundaries[static_cast<size_t>(c) + 1], c == 0, c == C_ - 1, po.micro_batch_size,
                                slots[static_cast<size_t>(c)], dv.kernels.get());
    if (!st.ok()) {
      if (st.status().code() == StatusCode::kResourceExhausted) {
        return Status::ResourceExhausted(fmt::format(
            "chunk {} ({} micro-batches in flight of {} sequences × {} tokens) does not fit on GPU {}: {}; use more "
            "micro-batches of fewer sequences, or more stages", c, slots[static_cast<size_t>(c)], po.micro_batch_size,
            spec_.shape.seq_len, gpus_[static_cast<size_t>(dv.gpu)].id, st.status().message()));
      }
      return st.status();
    }
    LMS_RETURN_IF_ERROR((*st)->CheckParams(gpus_[static_cast<size_t>(dv.gpu)].view));
    act_bytes_ += (*st)->activation_bytes();
    stages_.push_back(std::move(*st));
  }
  if (C_ > 1 && spec_.shape.tied) {
    const int64_t n = layout_.token_embd.size();
    const bool head_here = Local((C_ - 1) % S_), embd_here = Local(0);
    if (head_here) {
      ScopedDevice sd(GpuOf(C_ - 1).id);
      LMS_RETURN_IF_ERROR(head_grad_.Allocate(n, "head gradient"));
    }
    if (embd_here && (!head_here || GpuOf(C_ - 1).id != GpuOf(0).id)) {
      ScopedDevice sd(GpuOf(0).id);
      LMS_RETURN_IF_ERROR(head_grad_peer_.Allocate(n, "head gradient"));
    }
  }
  // Stages on GPUs of their own use the registered multi-GPU transport (NCCL) where there is
  // one and the schedule sends each neighbour its messages in the order it receives them
  // (GPipe, 1F1B); otherwise, and for stages sharing a GPU, stream-ordered copies in process.
  std::vector<int> distinct(ids.begin(), ids.begin() + G);
  std::sort(distinct.begin(), distinct.end());
  const bool repeats = std::adjacent_find(distinct.begin(), distinct.end()) != distinct.end();  // NCCL refuses
  if (!ranks_ && G == S_ && S_ > 1 && !repeats && po.schedule != lms::train::ScheduleKind::kInterleaved) {
    std::lock_guard<std::mutex> lock(TransportMutex());
    if (TransportFactory()) {
      std::vector<int> gpu_of_stage;
      for (const auto& d : devs_) gpu_of_stage.push_back(gpus_[static_cast<size_t>(d.gpu)].id);
      make_multi_ = [f = TransportFactory(), gpu_of_stage] { return f(gpu_of_stage); };
    }
  }
  if (ranks_) {
    RankTransportFactory nccl;
    {
      std::lock_guard<std::mutex> lock(TransportMutex());
      nccl = RankFactory();
    }
    bool use_nccl = false;
    if (nccl && po.schedule != lms::train::ScheduleKind::kInterleaved) {
      LMS_ASSIGN_OR_RETURN(use_nccl, RanksOnDistinctGpus(*ranks_, gpus_[0].id));
    }
    if (use_nccl) {
      LMS_ASSIGN_OR_RETURN(transport_, nccl(*ranks_, gpus_[0].id));
      describe_ += ", NCCL between ranks";
    } else {
      transport_ = std::make_unique<RankDeviceTransport>(ranks_, S_);
      describe_ += ", messages through the host between ranks";
    }
  } else {
    LMS_ASSIGN_OR_RETURN(transport_, MakeTransport());
  }
  if (make_multi_) describe_ += ", NCCL between stages";
  // DeviceBuffer zeroes with cudaMemset, on the legacy stream: let it finish before the
  // engine's non-blocking streams touch the buffers.
  for (auto& g : gpus_) {
    ScopedDevice sd(g.id);
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  }
  return Status::Ok();
}

// On the stream of pipeline device i, the first on GPU i, where the optimizer runs.
Status Engine::RefreshBf16(Gpu& g, int64_t begin, int64_t end) {
  if (precision_ != GemmPrecision::kBF16 || end <= begin) return Status::Ok();
  Segment* sg = g.Holding(begin, end);
  if (!sg) return Status::Internal("bf16 refresh of parameters the GPU does not hold");
  const int64_t at = begin - sg->begin;
  return devs_[static_cast<size_t>(g.dev)].kernels->ToBf16(sg->p_bf16.get() + at, sg->p.get() + at, end - begin);
}

Status Engine::SetState(const std::vector<float>& params, const std::vector<float>* m, const std::vector<float>* v) {
  const size_t N = static_cast<size_t>(layout_.total);
  if (params.size() != N || (m && m->size() != N) || (v && v->size() != N)) {
    return Status::InvalidArgument("weights or optimizer moments do not match the model's parameter count");
  }
  for (auto& g : gpus_) {
    ScopedDevice sd(g.id);
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    // On the stream the bf16 conversion runs on: a synchronous copy from pageable memory may
    // return before its data has landed, and the engine's streams do not wait for it.
    const cudaStream_t s = devs_[static_cast<size_t>(g.dev)].stream;
    auto upload = [s](DeviceBuffer<float>& dst, const std::vector<float>* src, int64_t begin) {
      if (!src) return CudaStatus(cudaMemsetAsync(dst.get(), 0, dst.bytes(), s), "cudaMemsetAsync");
      return CudaStatus(cudaMemcpyAsync(dst.get(), src->data() + begin, dst.bytes(), cudaMemcpyHostToDevice, s),
                        "cudaMemcpyAsync");
    };
    for (Segment& sg : g.segs) {
      LMS_RETURN_IF_ERROR(upload(sg.p, &params, sg.begin));
      if (sg.owned) {
        LMS_RETURN_IF_ERROR(upload(sg.m, m, sg.begin));
        LMS_RETURN_IF_ERROR(upload(sg.v, v, sg.begin));
      }
      LMS_RETURN_IF_ERROR(RefreshBf16(g, sg.begin, sg.end));
    }
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  }
  return Status::Ok();
}

Status Engine::Gather(DeviceBuffer<float> Segment::*field, std::vector<float>& out) const {
  out.assign(static_cast<size_t>(layout_.total), 0.0f);
  for (const auto& g : gpus_) {
    ScopedDevice sd(g.id);
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    for (const Segment& sg : g.segs) {
      if (!sg.owned) continue;
      LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(out.data() + sg.begin, (sg.*field).get(), (sg.*field).bytes(),
                                          cudaMemcpyDeviceToHost));
    }
  }
  // Other ranks' ranges: a sum of vectors that are zero outside each rank's own ranges.
  if (ranks_) return ranks_->AllReduceSum(out.data(), out.size());
  return Status::Ok();
}

Status Engine::ZeroGrads() {
  // On the GPU's own stream: cudaMemset would run on the legacy default stream, which the
  // engine's non-blocking streams do not wait for.
  for (auto& g : gpus_) {
    ScopedDevice sd(g.id);
    const cudaStream_t s = devs_[static_cast<size_t>(g.dev)].stream;
    for (Segment& sg : g.segs) {
      if (sg.owned) LMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(sg.g.get(), 0, sg.g.bytes(), s));
    }
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s));
  }
  return Status::Ok();
}

Result<double> Engine::OptimizerStep(int64_t step) {
  const lms::train::OptimConfig& c = spec_.optim;
  double sum = 0.0;
  for (auto& g : gpus_) {
    ScopedDevice sd(g.id);
    TrainKernels& k = *devs_[static_cast<size_t>(g.dev)].kernels;
    for (size_t r = 0; r < g.owned.size(); ++r) {
      const auto [b, e] = g.owned[r];
      const Segment* sg = g.Holding(b, e);
      LMS_RETURN_IF_ERROR(k.SumSquares(sg->g.get() + (b - sg->begin), e - b, g.sums.get() + r));
    }
    std::vector<double> part(g.owned.size());
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(part.data(), g.sums.get(), part.size() * sizeof(double), cudaMemcpyDeviceToHost,
                                             k.stream()));
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(k.stream()));
    for (double x : part) sum += x;
  }
  if (ranks_) LMS_RETURN_IF_ERROR(ranks_->AllReduceSum(&sum, 1));
  const double norm = std::sqrt(sum);
  const float clip = (c.grad_clip > 0.0f && norm > c.grad_clip) ? static_cast<float>(c.grad_clip / norm) : 1.0f;
  const float lr = lms::train::LearningRate(c, step);
  const int64_t t = step + 1;
  const float bc1 = 1.0f - static_cast<float>(std::pow(c.beta1, t));
  const float bc2 = 1.0f - static_cast<float>(std::pow(c.beta2, t));
  const lms::train::AdamWScalars sc{clip, lr, c.beta1, c.beta2, bc1, bc2, c.eps, c.weight_decay};
  for (auto& g : gpus_) {
    ScopedDevice sd(g.id);
    TrainKernels& k = *devs_[static_cast<size_t>(g.dev)].kernels;
    for (const auto& [b, e] : g.owned) {
      Segment* sg = g.Holding(b, e);
      const int64_t at = b - sg->begin;
      LMS_RETURN_IF_ERROR(k.AdamW(sc, sg->p.get() + at, sg->g.get() + at, sg->m.get() + at, sg->v.get() + at,
                                  sg->decay.get() + at, e - b));
      LMS_RETURN_IF_ERROR(RefreshBf16(g, b, e));
    }
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(k.stream()));
  }
  // The tied head is read by the last chunk: bring its GPU the updated embedding.
  if (ranks_) {
    if (C_ > 1 && spec_.shape.tied) LMS_RETURN_IF_ERROR(ExchangeEmbedding());
  } else if (C_ > 1 && spec_.shape.tied && &GpuOf(C_ - 1) != &GpuOf(0)) {
    Gpu& dst = GpuOf(C_ - 1);
    const Gpu& src = GpuOf(0);
    const int64_t off = layout_.token_embd.offset, n = layout_.token_embd.size();
    ScopedDevice sd(dst.id);
    const cudaStream_t s = devs_[static_cast<size_t>(dst.dev)].stream;  // src's stream is synchronised
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyPeerAsync(const_cast<float*>(dst.view.p(layout_.token_embd)), dst.id,
                                                 src.view.p(layout_.token_embd), src.id,
                                                 static_cast<size_t>(n) * sizeof(float), s));
    LMS_RETURN_IF_ERROR(RefreshBf16(dst, off, off + n));
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s));
  }
  return norm;
}

Result<StepReport> Engine::Run(const int32_t* inputs, const int32_t* targets, float loss_scale, bool backward) {
  if (!broken_.ok()) return broken_;
  const auto& po = spec_.pipeline;
  const int S = S_, V = po.chunks, C = C_, M = po.microbatches;
  const int64_t rows = int64_t{po.micro_batch_size} * spec_.shape.seq_len, d = spec_.shape.d_model;
  std::vector<std::vector<PipeOp>> ops;
  if (backward) {
    ops = lms::train::MakeSchedule(po.schedule, S, M, V);
  } else {
    ops.assign(static_cast<size_t>(S), {});
    for (int s = 0; s < S; ++s)
      for (int m = 0; m < M; ++m)
        for (int v = 0; v < V; ++v) ops[static_cast<size_t>(s)].push_back({true, m, v});
  }
  float* head_grad = nullptr;
  // The last chunk's stream zeroes what the last chunk accumulates into, ahead of its work.
  Dev& lastdev = devs_[static_cast<size_t>((C - 1) % S)];
  const bool last_here = Local((C - 1) % S);
  if (last_here) {
    ScopedDevice sd(gpus_[static_cast<size_t>(lastdev.gpu)].id);
    if (backward) {
      if (head_grad_.size()) {
        LMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(head_grad_.get(), 0, head_grad_.bytes(), lastdev.stream));
        head_grad = head_grad_.get();
      } else {
        head_grad = GpuOf(C - 1).view.g(layout_.Head());
      }
    }
    LMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(lastdev.loss_sum.get(), 0, sizeof(double), lastdev.stream));
    LMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(lastdev.loss_count.get(), 0, sizeof(int64_t), lastdev.stream));
  }

  StepReport rep;
  rep.busy_s.assign(static_cast<size_t>(S), 0.0);
  rep.peak_in_flight.assign(static_cast<size_t>(S), 0);
  std::vector<std::vector<TimelineEvent>> events(static_cast<size_t>(S));
  std::vector<Status> status(static_cast<size_t>(S));
  const auto t0 = std::chrono::steady_clock::now();

  auto run_device = [&](int dev) {
    Dev& D = devs_[static_cast<size_t>(dev)];
    Gpu& G = gpus_[static_cast<size_t>(D.gpu)];
    Status& err = status[static_cast<size_t>(dev)];
    if (cudaSetDevice(G.id) != cudaSuccess) {
      err = Status::Internal("cannot select the GPU");
      transport_->Abort();
      return;
    }
    const DeviceParams& P = G.view;
    // GPU-side timing: events before and after each op, read once the stream is done.
    struct Mark {
      cudaEvent_t start, end;
      TimelineEvent ev;
    };
    std::vector<Mark> marks;
    cudaEvent_t origin = nullptr;
    err = CudaStatus(cudaEventCreate(&origin), "cudaEventCreate");
    if (err.ok()) err = CudaStatus(cudaEventRecord(origin, D.stream), "cudaEventRecord");
    const size_t n = static_cast<size_t>(rows * d);
    int live = 0;
    const auto& mine = ops[static_cast<size_t>(dev)];
    // What op i receives before it runs, and sends after (peer −1: nothing).
    auto incoming = [&](size_t i) {
      const PipeOp& o = mine[i];
      const int c = o.chunk * S + dev;
      DeviceTransport::Message msg;
      msg.peer = (o.forward ? c == 0 : c == C - 1) ? -1 : (o.forward ? c - 1 : c + 1);
      msg.kind = o.forward ? MessageKind::kActivation : MessageKind::kGradient;
      msg.microbatch = o.microbatch;
      msg.buf = D.in.get();
      msg.n = n;
      return msg;
    };
    bool received = false;  // op i's input already came with op i−1's send
    for (size_t i = 0; i < mine.size(); ++i) {
      if (!err.ok()) break;
      const PipeOp& op = mine[i];
      const int m = op.microbatch;
      const int c = op.chunk * S + dev;
      CudaStage& st = *stages_[static_cast<size_t>(c)];
      const bool first = c == 0, last = c == C - 1;
      if (const auto in = incoming(i); in.peer >= 0 && !received) {
        err = transport_->Recv(c, in.peer, in.kind, m, D.in.get(), n, D.stream);
        if (!err.ok()) break;
      }
      received = false;
      Mark mk{};
      err = CudaStatus(cudaEventCreate(&mk.start), "cudaEventCreate");
      if (err.ok()) err = CudaStatus(cudaEventCreate(&mk.end), "cudaEventCreate");
      if (err.ok()) err = CudaStatus(cudaEventRecord(mk.start, D.stream), "cudaEventRecord");
      if (!err.ok()) break;
      if (op.forward) {
        err = st.Forward(m, P, inputs + m * rows, D.in.get(), targets + m * rows, loss_scale, D.out.get(),
                         D.loss_sum.get(), D.loss_count.get());
        if (!backward) st.Release(m);
        rep.peak_in_flight[static_cast<size_t>(dev)] = std::max(rep.peak_in_flight[static_cast<size_t>(dev)], ++live);
        if (!backward) --live;
      } else {
        err = st.Backward(m, P, D.in.get(), head_grad, D.out.get());
        --live;
      }
      if (err.ok()) err = CudaStatus(cudaEventRecord(mk.end, D.stream), "cudaEventRecord");
      mk.ev = TimelineEvent{dev, m, op.forward, 0, 0, op.chunk};
      marks.push_back(mk);
      if (!err.ok()) break;
      if (op.forward ? !last : !first) {
        DeviceTransport::Message out;
        out.peer = op.forward ? c + 1 : c - 1;
        out.kind = op.forward ? MessageKind::kActivation : MessageKind::kGradient;
        out.microbatch = m;
        out.buf = D.out.get();
        out.n = n;
        const auto next = i + 1 < mine.size() ? incoming(i + 1) : DeviceTransport::Message{-1};
        if (next.peer >= 0 && mine[i + 1].chunk * S + dev == c) {  // the pair Megatron-LM groups
          err = transport_->SendRecv(c, out, next, D.stream);
          received = true;
        } else {
          err = transport_->Send(c, out.peer, out.kind, m, out.buf, n, D.stream);
        }
      }
    }
    const Status sync = CudaStatus(cudaStreamSynchronize(D.stream), "cudaStreamSynchronize");
    if (err.ok()) err = sync;
    for (Mark& mk : marks) {
      float a = 0, b = 0;
      if (err.ok() && cudaEventElapsedTime(&a, origin, mk.start) == cudaSuccess &&
          cudaEventElapsedTime(&b, origin, mk.end) == cudaSuccess) {
        mk.ev.start_s = a / 1e3;
        mk.ev.end_s = b / 1e3;
        rep.busy_s[static_cast<size_t>(dev)] += (b - a) / 1e3;
        events[static_cast<size_t>(dev)].push_back(mk.ev);
      }
      cudaEventDestroy(mk.start);
      cudaEventDestroy(mk.end);
    }
    if (origin) cudaEventDestroy(origin);
    if (!err.ok()) transport_->Abort();
  };

  int caller_device = 0;
  cudaGetDevice(&caller_device);
  if (S == 1 || ranks_) {
    ScopedDevice restore(caller_device);  // run_device selects its GPU on the caller's thread
    run_device(S == 1 ? 0 : ranks_->rank());  // with ranks: this process's one device
  } else {
    std::vector<std::thread> threads;
    for (int s = 0; s < S; ++s) threads.emplace_back(run_device, s);
    for (auto& t : threads) t.join();
  }
  Status failure;
  for (const Status& st : status) {
    if (!st.ok() && (failure.ok() || failure.code() == StatusCode::kCancelled)) failure = st;
  }
  if (!failure.ok() && ranks_) {
    // The group was aborted: the other ranks fail too, and this run cannot go on.
    broken_ = failure.WithContext("an earlier step of this multi-process run failed");
    return failure;
  }
  if (!failure.ok()) {
    auto fresh = MakeTransport();  // drops undelivered parcels; NCCL's were torn down by Abort
    if (!fresh.ok()) {
      broken_ = fresh.status();
      return failure;
    }
    transport_ = std::move(*fresh);
    for (auto& st : stages_)
      for (int m = 0; m < M; ++m) st->Release(m);
    return failure;
  }
  if (last_here) {
    ScopedDevice sd(gpus_[static_cast<size_t>(lastdev.gpu)].id);
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(&rep.loss_sum, lastdev.loss_sum.get(), sizeof(double), cudaMemcpyDeviceToHost));
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(&rep.tokens, lastdev.loss_count.get(), sizeof(int64_t), cudaMemcpyDeviceToHost));
  }
  if (ranks_) {
    if (backward && C > 1 && spec_.shape.tied) LMS_RETURN_IF_ERROR(ExchangeHeadGrad());
  } else if (backward && head_grad_.size()) {
    // The tied embedding's two gradient shares (embedding on chunk 0, head on the last).
    Gpu& g0 = GpuOf(0);
    Dev& d0 = devs_[0];
    ScopedDevice sd(g0.id);
    const float* share = head_grad_.get();
    if (head_grad_peer_.size()) {  // the last chunk's stream is done (its thread synchronised)
      LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyPeerAsync(head_grad_peer_.get(), g0.id, head_grad_.get(), GpuOf(C - 1).id,
                                                   head_grad_.bytes(), d0.stream));
      share = head_grad_peer_.get();
    }
    LMS_RETURN_IF_ERROR(d0.kernels->Add(g0.view.g(layout_.token_embd), g0.view.g(layout_.token_embd), share,
                                        layout_.token_embd.size()));
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d0.stream));
  }
  rep.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int s = 0; s < S; ++s) rep.events.insert(rep.events.end(), events[static_cast<size_t>(s)].begin(), events[static_cast<size_t>(s)].end());
  LMS_RETURN_IF_ERROR(ShareReport(rep));
  return rep;
}

Status Engine::ShareReport(StepReport& rep) const {
  return ranks_ ? lms::train::SumReportOverRanks(*ranks_, rep) : Status::Ok();
}

// The last chunk's share of the tied embedding's gradient, from its rank to rank 0, where it is
// added to the embedding's gradient (host-staged; the stages' streams are synchronised).
Status Engine::ExchangeHeadGrad() {
  const int head = (C_ - 1) % S_;
  if (head == 0) return Status::Ok();
  const size_t n = static_cast<size_t>(layout_.token_embd.size());
  std::vector<float> host(n);
  if (Local(head)) {
    ScopedDevice sd(GpuOf(C_ - 1).id);
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(host.data(), head_grad_.get(), n * sizeof(float), cudaMemcpyDeviceToHost));
    return ranks_->SendFloats(0, lms::train::kEngineTagBase, host.data(), n);
  }
  if (!Local(0)) return Status::Ok();
  LMS_RETURN_IF_ERROR(ranks_->RecvFloats(head, lms::train::kEngineTagBase, host.data(), n));
  Gpu& g0 = GpuOf(0);
  Dev& d0 = devs_[0];
  ScopedDevice sd(g0.id);
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(head_grad_peer_.get(), host.data(), n * sizeof(float), cudaMemcpyHostToDevice,
                                           d0.stream));
  LMS_RETURN_IF_ERROR(d0.kernels->Add(g0.view.g(layout_.token_embd), g0.view.g(layout_.token_embd),
                                      head_grad_peer_.get(), layout_.token_embd.size()));
  return CudaStatus(cudaStreamSynchronize(d0.stream), "cudaStreamSynchronize");
}

// Rank 0's updated embedding to the rank of the tied head, after the optimizer step.
Status Engine::ExchangeEmbedding() {
  const int head = (C_ - 1) % S_;
  if (head == 0) return Status::Ok();
  const int64_t off = layout_.token_embd.offset, n = layout_.token_embd.size();
  std::vector<float> host(static_cast<size_t>(n));
  if (Local(0)) {
    ScopedDevice sd(GpuOf(0).id);
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(host.data(), GpuOf(0).view.p(layout_.token_embd), host.size() * sizeof(float),
                                        cudaMemcpyDeviceToHost));
    return ranks_->SendFloats(head, lms::train::kEngineTagBase + 1, host.data(), host.size());
  }
  if (!Local(head)) return Status::Ok();
  LMS_RETURN_IF_ERROR(ranks_->RecvFloats(0, lms::train::kEngineTagBase + 1, host.data(), host.size()));
  Gpu& g = GpuOf(C_ - 1);
  ScopedDevice sd(g.id);
  const cudaStream_t s = devs_[static_cast<size_t>(g.dev)].stream;  // the conversion's stream (see SetState)
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(const_cast<float*>(g.view.p(layout_.token_embd)), host.data(),
                                           host.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  LMS_RETURN_IF_ERROR(RefreshBf16(g, off, off + n));
  return CudaStatus(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

}  // namespace

namespace {

Result<GemmPrecision> PrecisionOf(const lms::train::TrainEngineSpec& spec) {
  if (spec.precision == "f32") return GemmPrecision::kF32;
  if (!spec.precision.empty() && spec.precision != "bf16") {
    return Status::InvalidArgument("precision must be f32 or bf16, not '" + spec.precision + "'");
  }
  return GemmPrecision::kBF16;
}

}  // namespace

Result<std::unique_ptr<CudaTrainEngine>> CreateCudaTrainEngineOn(const lms::train::TrainEngineSpec& spec,
                                                                 const lms::train::ParamLayout& layout,
                                                                 const std::vector<int>& gpus) {
  LMS_ASSIGN_OR_RETURN(const GemmPrecision precision, PrecisionOf(spec));
  lms::train::PipelineOptions check = spec.pipeline;
  check.threads.clear();  // CPU threads per stage mean nothing here
  LMS_RETURN_IF_ERROR(lms::train::ValidatePipeline(spec.shape, check));
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    count = 0;
  }
  if (gpus.empty()) return Status::InvalidArgument("no GPU to train on");
  for (int id : gpus) {
    if (id < 0 || id >= count) return Status::NotFound(fmt::format("no CUDA device {} ({} present)", id, count));
  }
  auto e = std::make_unique<Engine>(spec, layout);
  LMS_RETURN_IF_ERROR(e->Init(gpus, precision));
  return std::unique_ptr<CudaTrainEngine>(std::move(e));
}

Result<std::unique_ptr<CudaTrainEngine>> CreateCudaTrainEngine(const lms::train::TrainEngineSpec& spec,
                                                               const lms::train::ParamLayout& layout) {
  LMS_RETURN_IF_ERROR(PrecisionOf(spec).status());
  LMS_ASSIGN_OR_RETURN(std::vector<int> ids, ParseCudaTrainDevices(spec.device));
  if (spec.ranks && spec.ranks->world() > 1) {
    // One GPU a process: the process's local rank (the launcher's, else its rank) picks among the
    // GPUs the device string names; processes beyond them share GPUs.
    const net::LauncherInfo env = net::FromLauncherEnvironment();
    const int local = env.local_rank >= 0 ? env.local_rank : spec.ranks->rank();
    ids = {ids[static_cast<size_t>(local) % ids.size()]};
  }
  return CreateCudaTrainEngineOn(spec, layout, ids);
}

void SetMultiGpuTransport(DeviceTransportFactory factory) {
  std::lock_guard<std::mutex> lock(TransportMutex());
  TransportFactory() = std::move(factory);
}

void SetRankTransport(RankTransportFactory factory) {
  std::lock_guard<std::mutex> lock(TransportMutex());
  RankFactory() = std::move(factory);
}

void RegisterCudaTrainEngine() {
  lms::train::RegisterTrainEngine("cuda", [](const lms::train::TrainEngineSpec& spec, const lms::train::ParamLayout& layout)
                                              -> Result<std::unique_ptr<lms::train::TrainEngine>> {
    LMS_ASSIGN_OR_RETURN(auto e, CreateCudaTrainEngine(spec, layout));
    return std::unique_ptr<lms::train::TrainEngine>(std::move(e));
  });
}

}  // namespace lms::gpu::train
