//! A page rendered by headless Chromium (Debian's `chromium` package): a screenshot, the DOM
//! after its scripts ran, and every console message (errors and uncaught exceptions included).

use std::path::Path;
use std::process::Command;

/// What Chromium made of a page.
#[derive(Debug)]
pub struct Rendered {
    /// The screenshot, decoded: width, height and RGBA pixels.
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
    /// The DOM after the page's scripts ran (`--dump-dom`).
    pub dom: String,
    /// Console messages and uncaught exceptions, one per line as Chromium logged them.
    pub console: Vec<String>,
}

impl Rendered {
    /// Pixels that are not (near) white: how much the screenshot shows.
    pub fn inked_pixels(&self) -> usize {
        self.rgba
            .chunks_exact(4)
            .filter(|p| p[0] < 235 || p[1] < 235 || p[2] < 235)
            .count()
    }

    /// Distinct colours in the screenshot (a page of charts has many; a blank one, one).
    pub fn colours(&self) -> usize {
        let mut seen: Vec<[u8; 3]> = self
            .rgba
            .chunks_exact(4)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}

fn chromium() -> Command {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        // Never fetch anything but the file itself.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]);
    cmd
}

fn run(mut cmd: Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run chromium ({what}): {e}; install Debian's `chromium`")
    });
    assert!(
        out.status.success(),
        "chromium failed ({what}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Renders the HTML file at `page` at `width` × `height` CSS pixels.
pub fn render(page: &Path, width: u32, height: u32) -> Rendered {
    let page = page.canonicalize().expect("page path");
    let url = format!("file://{}", page.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("shot.png");
    let mut cmd = chromium();
    cmd.arg(format!(
        "--user-data-dir={}",
        dir.path().join("profile").display()
    ))
    .args(["--enable-logging=stderr", "--v=0"])
    .arg(format!("--screenshot={}", shot.display()))
    .arg(format!("--window-size={width},{height}"))
    .arg("--virtual-time-budget=2000")
    .arg(&url);
    let out = run(cmd, "screenshot");
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let mut cmd = chromium();
    cmd.arg(format!(
        "--user-data-dir={}",
        dir.path().join("profile2").display()
    ))
    .arg("--dump-dom")
    .arg("--virtual-time-budget=2000")
    .arg(&url);
    let dom = String::from_utf8_lossy(&run(cmd, "dump-dom").stdout).into_owned();
    let file = std::fs::File::open(&shot).expect("chromium wrote no screenshot");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG screenshot");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    Rendered {
        width: info.width,
        height: info.height,
        rgba,
        dom,
        console,
    }
}
