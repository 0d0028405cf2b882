#include "ui/desktop.h"

#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <fmt/format.h>
#include <imgui.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/util/log.h"
#include "ui/app_icon.h"
#include "ui/log_ring.h"
#include "ui/panels/arena_panel.h"
#include "ui/panels/chat_panel.h"
#include "ui/panels/evaluate_panel.h"
#include "ui/panels/history_panel.h"
#include "ui/panels/log_panel.h"
#include "ui/panels/models_panel.h"
#include "ui/panels/serve_panel.h"
#include "ui/panels/train_panel.h"

namespace lms::ui {
namespace {

namespace fs = std::filesystem;

std::string g_glfw_error;
void OnGlfwError(int code, const char* text) { g_glfw_error = fmt::format("{} (GLFW error {:#x})", text, code); }

// $XDG_CONFIG_HOME/lmstation, else ~/.config/lmstation.
fs::path ConfigDir() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return fs::path(x) / "lmstation";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".config" / "lmstation";
  return fs::path(".lmstation");
}

struct WindowState {
  int width = 1280, height = 800;
  std::string panel = "models";
};

WindowState LoadState(const fs::path& file) {
  WindowState s;
  std::ifstream in(file);
  if (!in) return s;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return s;
  s.width = std::clamp(j.value("width", s.width), 400, 8192);
  s.height = std::clamp(j.value("height", s.height), 300, 8192);
  s.panel = j.value("panel", s.panel);
  return s;
}

void SaveState(const fs::path& file, const WindowState& s) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << nlohmann::json{{"width", s.width}, {"height", s.height}, {"panel", s.panel}}.dump(1) << "\n";
    if (!out) return;
  }
  fs::rename(tmp, file, ec);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The framebuffer as PNG (rows flipped: OpenGL reads bottom-up).
bool SaveScreenshot(GLFWwindow* window, const std::string& path) {
  int w = 0, h = 0;
  glfwGetFramebufferSize(window, &w, &h);
  if (w <= 0 || h <= 0) return false;
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, px.data());
  std::vector<unsigned char> flipped(px.size());
  const size_t row = static_cast<size_t>(w) * 4;
  for (int y = 0; y < h; ++y) std::copy_n(px.data() + (h - 1 - y) * row, row, flipped.data() + y * row);
  stbi_write_force_png_filter = 0;  // unfiltered rows: simple for tests to read back
  return stbi_write_png(path.c_str(), w, h, 4, flipped.data(), static_cast<int>(row)) != 0;
}

// The window icon at the sizes window managers ask for most.
void SetWindowIcon(GLFWwindow* window) {
  static const int kSizes[] = {16, 32, 48, 64, 128};
  std::vector<std::vector<unsigned char>> pixels;
  std::vector<GLFWimage> images;
  for (int size : kSizes) pixels.push_back(DrawAppIcon(size));
  for (size_t i = 0; i < pixels.size(); ++i) images.push_back({kSizes[i], kSizes[i], pixels[i].data()});
  glfwSetWindowIcon(window, static_cast<int>(images.size()), images.data());
}

// DejaVu Sans from fonts-dejavu-core (or $LMS_FONT) with the punctuation, arrows and maths signs
// the panels print; ImGui's built-in font when neither is there. Returns what was loaded.
std::string LoadFont(ImGuiIO& io) {
  std::vector<std::string> candidates;
  if (const char* f = std::getenv("LMS_FONT"); f && *f) candidates.push_back(f);
  candidates.push_back("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
  static ImVector<ImWchar> ranges;  // must outlive the font atlas build
  if (ranges.empty()) {
    ImFontGlyphRangesBuilder builder;
    builder.AddRanges(io.Fonts->GetGlyphRangesDefault());
    static const ImWchar kExtra[] = {0x0100, 0x017F, 0x0370, 0x03FF, 0x2000, 0x206F, 0x2190, 0x21FF, 0x2200, 0x22FF, 0x2500, 0x257F, 0};
    builder.AddRanges(kExtra);
    builder.BuildRanges(&ranges);
  }
  for (const std::string& path : candidates) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) continue;
    if (io.Fonts->AddFontFromFileTTF(path.c_str(), 15.0f, nullptr, ranges.Data)) return path;
  }
  io.Fonts->AddFontDefault();
  return "built-in";
}

}  // namespace

int RunDesktop(const app::DesktopOptions& options) {
  if (!options.icon_png.empty()) {
    if (WriteAppIconPng(options.icon_png, 256)) return 0;
    std::fprintf(stderr, "error: cannot write %s\n", options.icon_png.c_str());
    return 1;
  }
  const bool test_run = !options.screenshot.empty();
  glfwSetErrorCallback(OnGlfwError);
  if (!glfwInit()) {
    const bool no_display = !std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY");
    std::fprintf(stderr,
                 "error: cannot open the desktop window: %s%s\n"
                 "Use a subcommand (lmstation --help) or lmstation --batch JOB.toml, or run it under a "
                 "desktop session (or xvfb-run).\n",
                 g_glfw_error.empty() ? "GLFW could not start" : g_glfw_error.c_str(),
                 no_display ? " — no display: DISPLAY and WAYLAND_DISPLAY are unset" : "");
    return 1;
  }
  const fs::path config_dir = ConfigDir();
  const fs::path state_file = config_dir / "desktop.json";
  WindowState state = test_run ? WindowState{} : LoadState(state_file);
  if (!options.panel.empty()) state.panel = Lower(options.panel);

  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  GLFWwindow* window = glfwCreateWindow(state.width, state.height, "lmstation", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "error: cannot create an OpenGL 3 window: %s\n", g_glfw_error.c_str());
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  SetWindowIcon(window);
  glfwSwapInterval(1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  // Panel layout (ImGui's own window settings) persists beside the window state.
  static std::string ini_path;
  if (test_run) {
    io.IniFilename = nullptr;
    io.ConfigFlags |= ImGuiConfigFlags_NoMouse;  // no hover tooltips from wherever the pointer is
  } else {
    std::error_code ec;
    fs::create_directories(config_dir, ec);
    ini_path = (config_dir / "imgui.ini").string();
    io.IniFilename = ini_path.c_str();
  }
  const std::string font = LoadFont(io);
  ImGui::StyleColorsDark();
  ImGui::GetStyle().WindowRounding = 0;
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 130");

  // The engines' log goes to the Log panel (and still to stderr).
  LogRing log_ring;
  SetLogCallback([&log_ring](LogLevel level, std::string_view m) {
    log_ring.Add(static_cast<int>(level), std::string(m));
    static const char* kNames[] = {"debug", "info", "warning", "error"};
    std::fprintf(stderr, "[%s] %.*s\n", kNames[static_cast<int>(level) & 3], static_cast<int>(m.size()), m.data());
  });
  LogInfo("lmstation desktop started");

  UiShared shared;
  shared.db_path = options.db;
  shared.log = &log_ring;
  auto models = std::make_unique<ModelsPanel>();
  shared.selected_model = models->FirstModel();
  auto chat = std::make_unique<ChatPanel>();
  if (!options.chat_prompt.empty()) chat->Script(shared.selected_model, options.chat_prompt);
  std::vector<std::unique_ptr<Panel>> panels;
  panels.push_back(std::move(models));
  panels.push_back(std::move(chat));
  auto serve = std::make_unique<ServePanel>();
  if (options.serve_now) serve->Script(shared.selected_model, options.serve_port, options.serve_requests);
  panels.push_back(std::move(serve));
  auto train = std::make_unique<TrainPanel>();
  if (options.train_now) train->Script(options.train_steps, options.train_out);
  panels.push_back(std::move(train));
  auto evaluate = std::make_unique<EvaluatePanel>();
  if (options.evaluate_now) evaluate->Script(1, 24);
  panels.push_back(std::move(evaluate));
  auto arena = std::make_unique<ArenaPanel>();
  if (!options.arena_prompt.empty()) arena->Script(options.arena_prompt, options.arena_vote);
  panels.push_back(std::move(arena));
  auto history = std::make_unique<HistoryPanel>();
  if (!options.history_select.empty()) {
    history->Script(options.history_select[0],
                    options.history_select.size() > 1 ? std::optional<int64_t>(options.history_select[1]) : std::nullopt);
  }
  panels.push_back(std::move(history));
  panels.push_back(std::make_unique<LogPanel>());
  bool known_panel = false;
  for (const auto& p : panels) known_panel = known_panel || Lower(p->Name()) == state.panel;
  if (!known_panel) {
    if (!options.panel.empty()) {
      std::fprintf(stderr, "error: no panel named '%s' (models, chat, serve, train, evaluate, arena, history, log)\n", options.panel.c_str());
      ImGui_ImplOpenGL3_Shutdown();
      ImGui_ImplGlfw_Shutdown();
      ImGui::DestroyContext();
      glfwDestroyWindow(window);
      glfwTerminate();
      return 2;
    }
    state.panel = "models";
  }

  int exit_code = 0;
  int frame = 0;
  Panel* active = nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  while (!glfwWindowShouldClose(window)) {
    if (test_run) {
      glfwPollEvents();
    } else {
      glfwWaitEventsTimeout(1.0 / 30);  // redraw for streaming text without spinning
    }
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    const ImGuiViewport* vp = ImGui::GetMainViewport();
    ImGui::SetNextWindowPos(vp->WorkPos);
    ImGui::SetNextWindowSize(vp->WorkSize);
    ImGui::Begin("lmstation", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                     ImGuiWindowFlags_NoBringToFrontOnFocus);
    if (ImGui::BeginTabBar("panels")) {
      for (auto& p : panels) {
        const bool select_now = frame == 0 && Lower(p->Name()) == state.panel;
        if (ImGui::BeginTabItem(p->Name(), nullptr, select_now ? ImGuiTabItemFlags_SetSelected : 0)) {
          active = p.get();
          if (frame > 0) state.panel = Lower(p->Name());
          p->Draw(shared);
          ImGui::EndTabItem();
        }
      }
      ImGui::EndTabBar();
    }
    ImGui::End();
    ImGui::Render();
    int fb_w = 0, fb_h = 0;
    glfwGetFramebufferSize(window, &fb_w, &fb_h);
    glViewport(0, 0, fb_w, fb_h);
    glClearColor(0.08f, 0.08f, 0.1f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    ++frame;
    if (test_run && frame >= options.frames) {
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const bool busy = active && active->Busy();
      if (!busy || waited > 300) {
        if (busy) std::fprintf(stderr, "warning: the %s panel was still busy after %.0f s\n", active->Name(), waited);
        const bool saved = SaveScreenshot(window, options.screenshot);
        nlohmann::json report{{"panel", active ? Lower(active->Name()) : ""}, {"frames", frame},
                              {"seconds", waited}, {"font", font}, {"report", active ? active->Report() : nlohmann::json()}};
        std::ofstream(options.screenshot + ".json") << report.dump(1) << "\n";
        if (!saved) {
          std::fprintf(stderr, "error: cannot write the screenshot %s\n", options.screenshot.c_str());
          exit_code = 1;
        } else {
          std::fprintf(stderr, "saved %s (%s panel, %d frames)\n", options.screenshot.c_str(),
                       active ? active->Name() : "?", frame);
        }
        break;
      }
    }
    glfwSwapBuffers(window);
  }
  if (!test_run) {
    glfwGetWindowSize(window, &state.width, &state.height);
    SaveState(state_file, state);
  }
  panels.clear();  // stops engines and joins background jobs while logging still works
  SetLogCallback(nullptr);
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return exit_code;
}

}  // namespace lms::ui
