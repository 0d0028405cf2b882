#include "app/train_record.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace lms::app {
namespace fs = std::filesystem;

Result<std::unique_ptr<TrainRecord>> TrainRecord::Open(const std::string& db_flag, const std::string& out_dir,
                                                       const std::string& config_path, int64_t resumed_at) {
  std::string path = db_flag;
  if (path.empty()) {
    path = store::DefaultDatabasePath();
    std::error_code ec;
    if (!fs::exists(path, ec)) return std::unique_ptr<TrainRecord>();
  }
  auto rec = std::unique_ptr<TrainRecord>(new TrainRecord());
  rec->path_ = path;
  LMS_ASSIGN_OR_RETURN(rec->store_, store::Store::Open(path));
  std::error_code ec;
  const std::string out_abs = fs::weakly_canonical(fs::absolute(out_dir, ec), ec).string();
  const std::string cfg_abs = fs::weakly_canonical(fs::absolute(config_path, ec), ec).string();
  // The output directory holds the checkpoint, so it identifies the (resumable) run.
  const nlohmann::json id = {{"out", out_abs}};
  LMS_ASSIGN_OR_RETURN(auto run, rec->store_->StartRun("train", fmt::format("{} -> {}", cfg_abs, out_abs), id.dump()));
  rec->run_id_ = run.id;
  // A fresh run replaces what an earlier one recorded here; a resumed one keeps steps up to its checkpoint.
  LMS_ASSIGN_OR_RETURN(store::Statement del, rec->store_->db().Prepare("DELETE FROM metrics WHERE run_id = ?1 AND step > ?2"));
  del.Bind(1, run.id).Bind(2, resumed_at);
  LMS_RETURN_IF_ERROR(del.Run());
  return rec;
}

Status TrainRecord::AddValue(int64_t step, const std::string& name, double value) {
  return store_->AddMetric(run_id_, step, name, value);
}

Status TrainRecord::AddStep(const train::StepStats& st, std::optional<double> val_loss) {
  return store_->db().Transaction([&]() -> Status {
    LMS_RETURN_IF_ERROR(AddValue(st.step, "loss", st.loss));
    LMS_RETURN_IF_ERROR(AddValue(st.step, "lr", st.lr));
    LMS_RETURN_IF_ERROR(AddValue(st.step, "grad_norm", st.grad_norm));
    LMS_RETURN_IF_ERROR(AddValue(st.step, "tokens_per_s", st.seconds > 0 ? static_cast<double>(st.tokens) / st.seconds : 0.0));
    LMS_RETURN_IF_ERROR(AddValue(st.step, "bubble", st.bubble));
    LMS_RETURN_IF_ERROR(AddValue(st.step, "wall_s", st.seconds));
    for (size_t s = 0; s < st.report.busy_s.size(); ++s) {
      LMS_RETURN_IF_ERROR(AddValue(st.step, fmt::format("stage{}_busy_s", s), st.report.busy_s[s]));
    }
    if (val_loss) LMS_RETURN_IF_ERROR(AddValue(st.step, "val_loss", *val_loss));
    return Status::Ok();
  });
}

Status TrainRecord::AddTimeline(int64_t step, const train::StepReport& rep) {
  return store_->db().Transaction([&]() -> Status {
    // Under the interleaved schedule a stage runs several chunks: the key names the chunk too.
    const bool chunked = std::any_of(rep.events.begin(), rep.events.end(), [](const auto& e) { return e.chunk > 0; });
    for (const auto& e : rep.events) {
      const std::string key = chunked ? fmt::format("timeline.s{}.c{}.mb{}.{}", e.stage, e.chunk, e.microbatch, e.forward ? "F" : "B")
                                      : fmt::format("timeline.s{}.mb{}.{}", e.stage, e.microbatch, e.forward ? "F" : "B");
      LMS_RETURN_IF_ERROR(AddValue(step, key + ".start_s", e.start_s));
      LMS_RETURN_IF_ERROR(AddValue(step, key + ".end_s", e.end_s));
    }
    return Status::Ok();
  });
}

Status TrainRecord::Finish(const std::string& status) { return store_->FinishRun(run_id_, status); }

}  // namespace lms::app
