// lmstation chat MODEL — interactive multi-turn chat with the model's template, streaming.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "app/generation_options.h"
#include "core/model/generate.h"
#include "core/util/log.h"

namespace lms::app {

CommandFn AddChatCommand(CLI::App& cli) {
  struct Opts {
    std::string model;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  o->gen.n_predict = 512;
  auto* sub = cli.add_subcommand("chat", "Chat with a model in the terminal (/reset, /exit)");
  sub->add_option("model", o->model, "GGUF file or known model name")->required();
  sub->add_option("--system", o->gen.system_prompt, "System prompt");
  sub->add_option("--chat-template", o->gen.chat_template_file, "Jinja chat template file to use instead of the model's");
  o->gen.AddSamplingFlags(sub);
  o->gen.AddRuntimeFlags(sub);
  return [o]() {
    if (Status s = o->gen.sampling.Validate(); !s.ok()) return Fail(s);
    auto lm = LoadModel(o->model, o->gen.threads, o->gen.device);
    if (!lm.ok()) return Fail(lm.status());
    const Model& model = *lm->model;
    auto session = Session::Create(model, *lm->backend, o->gen.session());
    if (!session.ok()) return Fail(session.status());
    const bool tty = isatty(STDIN_FILENO);
    auto reset = [&]() {
      nlohmann::json m = nlohmann::json::array();
      if (!o->gen.system_prompt.empty()) m.push_back({{"role", "system"}, {"content", o->gen.system_prompt}});
      return m;
    };
    nlohmann::json messages = reset();
    if (tty) std::fprintf(stderr, "chatting with %s — /reset starts over, /exit or Ctrl-D quits\n", model.config().name.c_str());
    std::string line;
    while (true) {
      if (tty) {
        std::fprintf(stdout, "\n> ");
        std::fflush(stdout);
      }
      if (!std::getline(std::cin, line)) break;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        messages = reset();
        (*session)->Rewind(0);
        continue;
      }
      if (line.empty()) continue;
      messages.push_back({{"role", "user"}, {"content", line}});
      auto rendered = RenderChat(model, o->gen.chat_template_file, messages, true);
      if (!rendered.ok()) return Fail(rendered.status());
      std::vector<int32_t> prompt = model.tokenizer().Encode(*rendered, false, true);
      Sampler sampler(o->gen.sampling);
      GenerateOptions go;
      go.max_tokens = o->gen.n_predict;
      go.stop = o->gen.stop;
      go.reuse_prefix = true;
      auto r = Generate(**session, sampler, prompt, go, [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
      });
      if (!r.ok()) {
        if (r.status().code() == StatusCode::kOutOfRange) {
          std::fprintf(stderr, "\n[the conversation no longer fits the context; use /reset]\n");
          messages.erase(messages.end() - 1);
          continue;
        }
        return Fail(r.status());
      }
      std::fprintf(stdout, "\n");
      LogInfo(fmt::format("{} new prompt tokens at {:.1f} t/s, {} generated at {:.1f} t/s",
                          r->evaluated_prompt_tokens, r->prompt_tokens_per_s(), r->tokens.size(),
                          r->generate_tokens_per_s()));
      messages.push_back({{"role", "assistant"}, {"content", r->text}});
    }
    return 0;
  };
}

}  // namespace lms::app
