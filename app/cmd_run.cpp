// lmstation run MODEL -p PROMPT — generate text once, streamed to stdout (or one JSON object).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "app/commands.h"
#include "app/generation_options.h"
#include "core/model/generate.h"
#include "core/util/log.h"

namespace lms::app {

CommandFn AddRunCommand(CLI::App& cli) {
  struct Opts {
    std::string model, prompt;
    bool chat = false, json = false, ignore_eos = false;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("run", "Generate text from a prompt");
  sub->add_option("model", o->model, "GGUF file or known model name (e.g. smollm2)")->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  sub->add_flag("--chat", o->chat, "Treat the prompt as a user message and apply the chat template");
  sub->add_option("--system", o->gen.system_prompt, "System prompt (with --chat)");
  sub->add_option("--chat-template", o->gen.chat_template_file, "Jinja chat template file to use instead of the model's");
  sub->add_flag("--json", o->json, "Print one JSON object (text, token ids, timings) instead of streaming text");
  sub->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-generation tokens");
  o->gen.AddSamplingFlags(sub);
  o->gen.AddRuntimeFlags(sub);
  return [o]() {
    if (Status s = o->gen.sampling.Validate(); !s.ok()) return Fail(s);
    auto lm = LoadModel(o->model, o->gen.threads, o->gen.device);
    if (!lm.ok()) return Fail(lm.status());
    const Model& model = *lm->model;
    std::string text = o->prompt;
    bool parse_special = false;
    if (o->chat) {
      nlohmann::json messages = nlohmann::json::array();
      if (!o->gen.system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", o->gen.system_prompt}});
      messages.push_back({{"role", "user"}, {"content", o->prompt}});
      auto rendered = RenderChat(model, o->gen.chat_template_file, messages, true);
      if (!rendered.ok()) return Fail(rendered.status());
      text = *rendered;
      parse_special = true;
    }
    // A rendered template carries its own BOS where the model wants one.
    std::vector<int32_t> prompt = model.tokenizer().Encode(text, /*add_special=*/!o->chat, parse_special);
    auto session = Session::Create(model, *lm->backend, o->gen.session());
    if (!session.ok()) return Fail(session.status());
    Sampler sampler(o->gen.sampling);
    GenerateOptions go;
    go.max_tokens = o->gen.n_predict;
    go.stop = o->gen.stop;
    go.ignore_eos = o->ignore_eos;
    TextCallback stream;
    if (!o->json) {
      stream = [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    auto r = Generate(**session, sampler, prompt, go, stream);
    if (!r.ok()) return Fail(r.status());
    if (o->json) {
      nlohmann::json j;
      j["text"] = r->text;
      j["tokens"] = r->tokens;
      j["prompt_tokens"] = r->prompt_tokens;
      j["prompt_ids"] = prompt;
      j["finish_reason"] = r->finish_reason;
      j["timings"] = {{"prompt_ms", r->prompt_ms},
                      {"generate_ms", r->generate_ms},
                      {"prompt_tokens_per_s", r->prompt_tokens_per_s()},
                      {"generate_tokens_per_s", r->generate_tokens_per_s()}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
      LogInfo(fmt::format("prompt: {} tokens, {:.1f} tokens/s | generated: {} tokens, {:.1f} tokens/s",
                          r->prompt_tokens, r->prompt_tokens_per_s(), r->tokens.size(),
                          r->generate_tokens_per_s()));
    }
    return 0;
  };
}

}  // namespace lms::app
