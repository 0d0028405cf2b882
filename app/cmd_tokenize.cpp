// lmstation tokenize MODEL TEXT — token ids separated by spaces.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

#include "app/commands.h"
#include "app/model_cache.h"
#include "core/model/gguf.h"
#include "core/tokenizer/tokenizer.h"

namespace lms::app {

static void PrintIds(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  std::printf("%s\n", line.c_str());
}

CommandFn AddTokenizeCommand(CLI::App& cli) {
  struct Opts {
    std::string model, text, file;
    bool no_add_special = false, parse_special = false, pieces = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("tokenize", "Print the token ids of a text");
  sub->add_option("model", o->model, "GGUF file or known model name")->required();
  sub->add_option("text", o->text, "Text to tokenize");
  sub->add_option("--file", o->file, "File with one JSON string per line; prints one line of ids per string");
  sub->add_flag("--no-add-special", o->no_add_special, "Do not add BOS/EOS even where the model asks for them");
  sub->add_flag("--parse-special", o->parse_special, "Recognise special tokens written in the text");
  sub->add_flag("--pieces", o->pieces, "Print id:piece pairs instead of ids");
  return [o]() {
    auto path = ResolveModel(o->model);
    if (!path.ok()) return Fail(path.status());
    auto file = gguf::GgufFile::Open(*path);
    if (!file.ok()) return Fail(file.status().WithContext(*path));
    auto tok = Tokenizer::FromGguf(**file);
    if (!tok.ok()) return Fail(tok.status());
    const bool add_special = !o->no_add_special;
    if (!o->file.empty()) {
      std::ifstream in(o->file);
      if (!in) return Fail(Status::IoError("cannot open " + o->file));
      std::string line;
      int line_no = 0;
      while (std::getline(in, line)) {
        ++line_no;
        if (line.empty()) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_string()) {
          return Fail(Status::InvalidArgument(o->file + ":" + std::to_string(line_no) + ": not a JSON string"));
        }
        PrintIds((*tok)->Encode(j.get<std::string>(), add_special, o->parse_special));
      }
      return 0;
    }
    auto ids = (*tok)->Encode(o->text, add_special, o->parse_special);
    if (o->pieces) {
      for (int32_t id : ids) {
        std::printf("%d:%s\n", id, nlohmann::json((*tok)->TokenToPiece(id)).dump(-1, ' ', false,
                    nlohmann::json::error_handler_t::replace).c_str());
      }
      return 0;
    }
    PrintIds(ids);
    return 0;
  };
}

}  // namespace lms::app
