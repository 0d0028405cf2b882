// Work that must not run on the UI thread (loading a model, reading the database, pulling a
// file): a thread, a status line the UI can show, a cancel flag the work may check, and a
// result handed back once. The UI polls Finished() each frame and takes the result.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/util/status.h"

namespace lms::ui {

template <typename T>
class BackgroundJob {
 public:
  struct Context {
    BackgroundJob* job;
    void SetStatus(std::string s) const { job->SetStatus(std::move(s)); }
    bool cancelled() const { return job->cancel_.load(); }
  };

  ~BackgroundJob() { Join(); }

  // Starts `fn` unless a job is running. Returns false when busy.
  bool Start(std::string status, std::function<Result<T>(const Context&)> fn) {
    if (running_.load()) return false;
    Join();
    cancel_ = false;
    SetStatus(std::move(status));
    {
      std::lock_guard<std::mutex> lock(mu_);
      result_.reset();
    }
    running_ = true;
    thread_ = std::thread([this, fn = std::move(fn)] {
      Result<T> r = fn(Context{this});
      std::lock_guard<std::mutex> lock(mu_);
      result_.emplace(std::move(r));
      running_ = false;
    });
    return true;
  }
  bool Running() const { return running_.load(); }
  void Cancel() { cancel_ = true; }
  // The result, once, after the job ended.
  std::optional<Result<T>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_.load() || !result_) return std::nullopt;
    std::optional<Result<T>> r = std::move(result_);
    result_.reset();
    return r;
  }
  std::string Status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  void SetStatus(std::string s) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(s);
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  std::string status_;              // GUARDED_BY(mu_)
  std::optional<Result<T>> result_;  // GUARDED_BY(mu_)
};

}  // namespace lms::ui
