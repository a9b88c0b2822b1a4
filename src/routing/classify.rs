//! Classification: which of the four categories (DOMAIN.md §5) an item belongs to.
//!
//! Owns text normalisation, keyword matching ([`Matcher`]: character codes, a start filter,
//! Aho-Corasick), the operator-edited keyword dictionaries (`config/dictionaries/*.toml`) and
//! the scoring. It does not own the routing rules (`routing::rules`), which compile the
//! dictionaries' keywords *and* their own into one [`Matcher`] and hand the dictionary hits
//! back to [`Dictionaries::score`]; [`Classifier`] is the same scoring with a matcher of its
//! own, for callers that only classify.
//!
//! **Normalisation** ([`normalize`]): full-width ASCII (`０-９`, `Ａ-Ｚ`, `，`, `（`...) becomes
//! half-width, ASCII letters become lower case, common traditional characters become
//! simplified (`拆遷補償` → `拆迁补偿`: a table of ~600 characters seen in petitions, not a full
//! converter), zero-width characters go, and whitespace runs become one space — or nothing
//! between two non-ASCII characters, so a line break in the middle of a scanned letter's word
//! does not hide a keyword. Keywords are normalised the same way, so a dictionary may be
//! written in either script and width.
//!
//! **Scoring**: every dictionary keyword found in the title or content adds its weight to its
//! category once, however often it occurs. A keyword found only inside a longer keyword that
//! was also found (`医疗` inside `医疗纠纷`) does not count: the longer, more specific one
//! decides. The item's upstream service code, when a dictionary lists it, adds that code's
//! weight. The highest score wins; no score at all, or a tie for the highest, leaves the item
//! **unclassified** (the caller sends it to the intake desk with a flag).
//!
//! Dictionary file format (one file per category, any name ending in `.toml`):
//!
//! ```toml
//! category = "rights"            # livelihood | rights | policy | historical
//! description = "权益维护"        # optional, for people
//! [service_codes]                # upstream service code → weight (optional)
//! "LD01" = 5
//! [keywords]                     # keyword → weight, 1..=100
//! "拖欠工资" = 4
//! ```
//!
//! Personal data: a [`Classification`] carries keywords from the dictionaries and numbers,
//! never text from the item.

use super::rules::Diagnostics;
use crate::config::ConfigError;
use crate::config::toml_file::TomlFile;
use crate::envelope::Category;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

/// The four categories in a fixed order: the index of a category in [`Scores`].
pub const CATEGORIES: [Category; 4] = [
    Category::Livelihood,
    Category::Rights,
    Category::Policy,
    Category::Historical,
];

/// Highest weight a keyword or service code may carry.
pub const MAX_WEIGHT: u32 = 100;

/// The index of a category in [`CATEGORIES`] and [`Scores`].
pub fn category_index(c: Category) -> usize {
    match c {
        Category::Livelihood => 0,
        Category::Rights => 1,
        Category::Policy => 2,
        Category::Historical => 3,
    }
}

/// Parses a category name as written in config files.
pub fn parse_category(s: &str) -> Option<Category> {
    CATEGORIES.into_iter().find(|c| c.as_str() == s)
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/// Common traditional characters and their simplified forms, as pairs. Folding is one-way and
/// idempotent (no right-hand character appears on a left-hand side); a test checks it.
const TRAD_SIMP: &str = concat!(
    "萬万 與与 專专 業业 東东 絲丝 兩两 嚴严 喪丧 個个 豐丰 臨临 為为 爲为 麗丽 舉举 義义 烏乌 樂乐 ",
    "喬乔 習习 鄉乡 書书 買买 亂乱 爭争 於于 虧亏 雲云 亞亚 產产 産产 畝亩 親亲 億亿 僅仅 從从 倉仓 ",
    "儀仪 們们 價价 眾众 衆众 優优 會会 傘伞 偉伟 傳传 傷伤 倫伦 偽伪 僞伪 體体 餘余 傭佣 僱雇 俠侠 ",
    "侶侣 僥侥 偵侦 側侧 僑侨 儈侩 儉俭 債债 傾倾 償偿 儲储 兒儿 黨党 蘭兰 關关 興兴 茲兹 養养 獸兽 ",
    "內内 岡冈 冊册 寫写 軍军 農农 馮冯 衝冲 決决 況况 凍冻 淨净 凈净 涼凉 減减 湊凑 凜凛 幾几 鳳凤 ",
    "憑凭 凱凯 擊击 鑿凿 劃划 劉刘 則则 剛刚 創创 刪删 別别 劑剂 劍剑 劇剧 勸劝 辦办 務务 動动 勵励 ",
    "勁劲 勞劳 勢势 勳勋 勻匀 區区 醫医 華华 協协 單单 賣卖 盧卢 衛卫 卻却 廠厂 厰厂 廳厅 歷历 曆历 ",
    "厲厉 壓压 厭厌 縣县 參参 雙双 發发 髮发 變变 敘叙 葉叶 號号 嘆叹 後后 嚇吓 呂吕 嗎吗 噸吨 聽听 ",
    "啟启 啓启 吳吴 員员 響响 問问 啞哑 喚唤 團团 糰团 園园 圍围 圖图 國国 圓圆 聖圣 場场 壞坏 塊块 ",
    "堅坚 壇坛 罈坛 壩坝 墳坟 墜坠 壟垄 壘垒 墾垦 執执 報报 堯尧 塗涂 壯壮 聲声 殼壳 壺壶 處处 備备 ",
    "復复 複复 夠够 頭头 誇夸 夾夹 奪夺 奮奋 獎奖 婦妇 媽妈 姦奸 婁娄 嬌娇 孫孙 學学 寧宁 寶宝 實实 ",
    "寵宠 審审 憲宪 宮宫 寬宽 賓宾 對对 尋寻 導导 將将 爾尔 塵尘 嘗尝 嚐尝 層层 屬属 歲岁 豈岂 嶺岭 ",
    "島岛 幣币 帥帅 師师 帳帐 帶带 幫帮 幹干 乾干 庫库 廢废 廣广 慶庆 應应 廟庙 開开 異异 棄弃 張张 ",
    "彈弹 強强 歸归 當当 錄录 徹彻 徑径 憶忆 懷怀 態态 憐怜 總总 戀恋 惡恶 惱恼 悅悦 懸悬 驚惊 慘惨 ",
    "慚惭 慣惯 懶懒 憤愤 願愿 懼惧 戰战 戲戏 戶户 撲扑 擴扩 掃扫 揚扬 擾扰 撫抚 拋抛 搶抢 護护 擔担 ",
    "擬拟 擁拥 擇择 掛挂 擋挡 撈捞 損损 換换 據据 擠挤 撐撑 擺摆 攤摊 斷断 無无 舊旧 時时 曠旷 暢畅 ",
    "暫暂 曬晒 術术 機机 殺杀 雜杂 權权 條条 來来 楊杨 極极 構构 槍枪 櫃柜 標标 樹树 樣样 橋桥 檢检 ",
    "樓楼 歡欢 殘残 毀毁 氣气 漢汉 湯汤 溝沟 沒没 滬沪 淪沦 瀋沈 滅灭 潑泼 潔洁 灑洒 濁浊 測测 濟济 ",
    "瀏浏 渾浑 濃浓 濤涛 澇涝 潤润 漲涨 漁渔 滲渗 溫温 灣湾 濕湿 溼湿 潰溃 滯滞 滿满 濾滤 濫滥 潛潜 ",
    "災灾 燈灯 靈灵 爐炉 點点 煉炼 爛烂 煩烦 燒烧 熱热 煥焕 營营 燦灿 爺爷 牽牵 犧牺 狀状 猶犹 獨独 ",
    "獲获 獄狱 貓猫 環环 現现 瑪玛 電电 畫画 療疗 瘋疯 癢痒 盞盏 監监 蓋盖 盤盘 盜盗 睜睁 礦矿 碼码 ",
    "磚砖 礎础 確确 禮礼 禍祸 離离 禿秃 種种 積积 稱称 穩稳 窮穷 竊窃 竄窜 筆笔 築筑 簡简 籃篮 糧粮 ",
    "緊紧 糾纠 紀纪 約约 紅红 級级 紛纷 紙纸 紡纺 線线 綫线 練练 組组 細细 織织 終终 經经 綁绑 結结 ",
    "給给 絡络 絕绝 絶绝 統统 繼继 續续 維维 綜综 綠绿 緒绪 編编 緣缘 繳缴 網网 罰罚 罷罢 羅罗 聯联 ",
    "聰聪 職职 腦脑 膽胆 腫肿 脹胀 臉脸 膠胶 艱艰 藝艺 節节 蘇苏 甦苏 蘋苹 範范 莊庄 蔣蒋 蓮莲 藥药 ",
    "蟲虫 蝦虾 補补 裝装 裡里 裏里 製制 襲袭 見见 規规 視视 覺觉 覽览 觀观 觸触 計计 訂订 認认 討讨 ",
    "讓让 訓训 議议 記记 講讲 許许 論论 設设 訪访 證证 評评 識识 訴诉 診诊 詞词 譯译 試试 詩诗 誠诚 ",
    "話话 該该 詳详 語语 誤误 說说 請请 諸诸 讀读 課课 誰谁 調调 談谈 謀谋 謊谎 謝谢 謠谣 謹谨 譜谱 ",
    "謙谦 貝贝 負负 財财 責责 貫贯 販贩 貨货 質质 貧贫 購购 貯贮 貼贴 貴贵 貸贷 貿贸 費费 賀贺 資资 ",
    "賊贼 賬账 賠赔 賤贱 賦赋 賜赐 賞赏 賴赖 贈赠 贊赞 讚赞 趕赶 趙赵 躍跃 蹤踪 車车 軟软 轉转 輪轮 ",
    "輕轻 載载 較较 輔辅 輛辆 輸输 轟轰 辭辞 邊边 遼辽 達达 遷迁 過过 運运 還还 這这 進进 遠远 違违 ",
    "連连 遲迟 適适 選选 遺遗 遞递 鄧邓 鄰邻 鄭郑 醜丑 釋释 鐘钟 鍾钟 鋼钢 錢钱 鐵铁 銀银 銷销 鎖锁 ",
    "鍋锅 錯错 鍵键 鎮镇 長长 門门 閃闪 閉闭 閒闲 間间 閱阅 闆板 闊阔 隊队 陽阳 陰阴 陣阵 階阶 際际 ",
    "陸陆 隱隐 險险 難难 雞鸡 雖虽 霧雾 靜静 韓韩 頁页 頂顶 項项 順顺 須须 預预 領领 頻频 題题 額额 ",
    "顏颜 類类 顧顾 顯显 風风 飛飞 飯饭 飲饮 餓饿 館馆 馬马 駕驾 駐驻 騙骗 驗验 驅驱 鬧闹 魚鱼 鮮鲜 ",
    "鳥鸟 鳴鸣 鴨鸭 麥麦 黃黄 齊齐 齒齿 龍龙 龜龟 鬥斗 韌韧 樁桩 倆俩 兇凶 註注 佔占 衹只 隻只 臺台 ",
    "颱台 檯台 週周 鬱郁 薑姜 麵面 醃腌 穀谷 嚮向 係系 繫系 蒐搜 徵征 瞭了 迴回 並并 剋克 準准 彙汇 ",
    "滙汇 暉晖 蘊蕴 訊讯 屆届 癒愈 殯殡 卹恤 睏困 腳脚 緩缓 鑒鉴 鑑鉴 檔档 齡龄 饑饥 飢饥 濱滨 鋪铺 ",
    "舖铺 廁厕 廈厦 樑梁 燉炖 盡尽 儘尽 夥伙 髒脏 臟脏 紮扎 紥扎 捲卷 慾欲 彥彦 佈布 淚泪 滷卤 鹵卤 ",
    "鹼碱 鹽盐 礙碍 闢辟 擱搁 倖幸 撿捡 攔拦 攬揽 撥拨 攝摄 攜携 攢攒 兌兑 縮缩 淺浅 濺溅 盪荡 蕩荡 ",
    "燙烫 聞闻 閩闽 閣阁 闖闯 闡阐 廚厨 嗇啬 奧奥 寢寝 屜屉 嶽岳 峯峰 廂厢 廬庐 彌弥 彎弯 慮虑 懇恳 ",
    "搖摇 攏拢 斃毙 暈晕 暱昵 枴拐 棟栋 棧栈 歐欧 殲歼 氈毡 洩泄 滄沧 滾滚 漸渐 澀涩 澤泽 瀝沥 灘滩 ",
    "犢犊 獅狮 瑣琐 畢毕 疊叠 瘡疮 癡痴 皺皱 盃杯 碩硕 祿禄 稅税 窩窝 竅窍 筍笋 篤笃 簽签 籤签 籌筹 ",
    "糞粪 緻致 縫缝 縱纵 繩绳 繪绘 羨羡 聳耸 脅胁 脈脉 膚肤 臥卧 艦舰 蔔卜 蕭萧 薦荐 藍蓝 虛虚 蝕蚀 ",
    "襖袄 覓觅 訝讶 詐诈 詢询 諮咨 誌志 誕诞 諾诺 謁谒 謂谓 譴谴 豎竖 豬猪 貪贪 貶贬 賺赚 贓赃 贖赎 ",
    "軌轨 軒轩 軸轴 輩辈 輯辑 轄辖 辯辩 邁迈 遜逊 鄒邹 醞酝 釀酿 釘钉 針针 鈔钞 鈴铃 鉛铅 銅铜 鋒锋 ",
    "錦锦 鍛锻 鏈链 鏡镜 鑰钥 閘闸 閥阀 隨随 雛雏 頑顽 頓顿 頸颈 頹颓 顆颗 颳刮 餅饼 餵喂 饒饶 駛驶 ",
    "騎骑 騰腾 驕骄 驟骤 鬆松 魯鲁 鴻鸿 鵝鹅 鶴鹤 麼么 黴霉 齣出 龐庞 纏缠 罵骂 屍尸 殮殓 墮堕 鋁铝 ",
    "諒谅 誼谊 譽誉 襪袜 鑄铸 鑽钻 汙污 傢家 隸隶 憂忧 擬拟 懲惩 罈坛 闈闱 廕荫 蔭荫 訟讼 詛诅 訛讹 ",
    "謗谤 誹诽 輿舆 鑑鉴 檢检 驗验 監监 懲惩 糾纠 紛纷 賄贿 賂赂 璣玑 縣县 鎮镇 區区 鄉乡 屬属 戶户",
);

const CJK_START: u32 = 0x4E00;
const CJK_END: u32 = 0xA000;

/// Dense table over U+4E00..U+9FFF: 0 = unchanged, else the simplified code point minus U+4E00.
pub(crate) fn fold_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0u16; (CJK_END - CJK_START) as usize];
        for pair in TRAD_SIMP.split_whitespace() {
            let mut cs = pair.chars();
            if let (Some(a), Some(b), None) = (cs.next(), cs.next(), cs.next()) {
                let (a, b) = (a as u32, b as u32);
                if (CJK_START..CJK_END).contains(&a) && (CJK_START..CJK_END).contains(&b) {
                    t[(a - CJK_START) as usize] = (b - CJK_START) as u16;
                }
            }
        }
        t.into_boxed_slice()
    })
}

/// One character folded; `'\0'` means "drop it".
#[inline]
pub(crate) fn fold(c: char) -> char {
    fold_with(fold_table(), c)
}

/// [`fold`] with the table already at hand (hot loops fetch it once).
#[inline(always)]
pub(crate) fn fold_with(table: &[u16], c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        _ if c.is_ascii() => c,
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(c as u32 - 0xFEE0).map_or(c, |a| a.to_ascii_lowercase())
        }
        '\u{3000}' => ' ',
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => '\0',
        '\u{4E00}'..='\u{9FFF}' => {
            let s = table[(c as u32 - CJK_START) as usize];
            if s == 0 {
                c
            } else {
                char::from_u32(CJK_START + s as u32).unwrap_or(c)
            }
        }
        _ => c,
    }
}

/// Normalised copy of `text` (see the module documentation).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, &mut out);
    out
}

/// Appends the normalised `text` to `out`. Leading and trailing whitespace is dropped.
pub fn normalize_into(text: &str, out: &mut String) {
    let mut prev: Option<char> = None;
    let mut space = false;
    for c in text.chars() {
        let c = fold(c);
        if c == '\0' {
            continue;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            space = false;
            if let Some(p) = prev
                && (p.is_ascii() || c.is_ascii())
            {
                out.push(' ');
            }
        }
        out.push(c);
        prev = Some(c);
    }
}

// ---------------------------------------------------------------------------------------------
// Keyword matching: normalisation fused with a compact code, a start filter, Aho-Corasick

/// Only the characters that occur in some keyword can be part of a match, so the automata
/// need not see any other character, nor the three UTF-8 bytes of each Chinese one.
/// [`Alphabet::codes_item`] normalises an item and turns it, in one pass, into a sequence of
/// codes: one per keyword character and 0 for any other character. A keyword character's
/// code `k` stands for 1-3 bytes (the most frequent characters get one byte), which is what
/// the Aho-Corasick automata read.
///
/// The byte encoding is self-synchronising (single bytes `01-7F`, lead bytes `C0-FF`, trail
/// bytes `80-BF`): a keyword's bytes can only match whole characters, so a match is exactly a
/// substring match in the normalised text. Whitespace follows [`normalize`]: dropped between
/// two non-ASCII characters, a space otherwise (0, unless some keyword contains a space). The
/// naive evaluator checks all this against `str::contains` on the normalised text, and a test
/// does on random text.
#[derive(Clone)]
pub struct Alphabet {
    /// For every BMP code point: its code, 0 (in no keyword) or one of `DROP`, `SPACE`, `WIDE`.
    /// 128 KB; a petition touches the lines of its own characters only. An array, so that a
    /// 16-bit index needs no bounds check.
    table: Box<[u16; 0x10000]>,
    /// Code → its bytes (bits 0-23), length (bits 24-25) and the ASCII flag.
    entries: Vec<u32>,
    /// Codes of characters outside the BMP, or too large for the table (never in practice),
    /// by folded character.
    wide: HashMap<char, u32>,
    /// The code of `' '` when a keyword contains a space, else 0.
    space: u32,
}

impl fmt::Debug for Alphabet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Alphabet({} characters)", self.entries.len() - 1)
    }
}

const DROP: u16 = 0xFFFF;
const SPACE: u16 = 0xFFFE;
const WIDE: u16 = 0xFFFD;
const LEN_SHIFT: u32 = 24;
const ASCII: u32 = 1 << 26;

impl Alphabet {
    /// Most distinct keyword characters the byte encoding can hold.
    pub const MAX_CHARS: usize = 127 + 3072 + 65536;

    /// An alphabet of every character of `keywords` (already normalised); `Err` when they use
    /// more than [`Alphabet::MAX_CHARS`] distinct characters.
    pub fn build<'k>(keywords: impl IntoIterator<Item = &'k str>) -> Result<Alphabet, String> {
        let mut freq: HashMap<char, usize> = HashMap::new();
        for k in keywords {
            for c in k.chars() {
                *freq.entry(c).or_default() += 1;
            }
        }
        let mut chars: Vec<(char, usize)> = freq.into_iter().collect();
        if chars.len() > Self::MAX_CHARS {
            return Err(format!(
                "keywords use {} distinct characters; at most {} are supported",
                chars.len(),
                Self::MAX_CHARS
            ));
        }
        // ASCII first, then the most frequent: they get the one-byte codes.
        chars.sort_unstable_by(|a, b| {
            b.0.is_ascii()
                .cmp(&a.0.is_ascii())
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(&b.0))
        });
        let mut entries = vec![0u32];
        let mut code_of: HashMap<char, u32> = HashMap::new();
        for (c, _) in &chars {
            let k = entries.len() as u32;
            entries.push(Self::entry(k, c.is_ascii()));
            code_of.insert(*c, k);
        }
        let mut table: Box<[u16; 0x10000]> = vec![0u16; 0x10000]
            .into_boxed_slice()
            .try_into()
            .expect("0x10000 entries");
        let mut wide = HashMap::new();
        for (cp, slot) in table.iter_mut().enumerate() {
            let Some(c) = char::from_u32(cp as u32) else {
                continue;
            };
            let f = fold(c);
            *slot = if f == '\0' {
                DROP
            } else if f.is_whitespace() {
                SPACE
            } else {
                match code_of.get(&f) {
                    None => 0,
                    Some(&k) if k < u32::from(WIDE) => k as u16,
                    Some(&k) => {
                        wide.insert(f, k);
                        WIDE
                    }
                }
            };
        }
        for (c, k) in &code_of {
            if (*c as u32) >= 0x10000 {
                wide.insert(*c, *k);
            }
        }
        let space = code_of.get(&' ').copied().unwrap_or(0);
        Ok(Alphabet {
            table,
            entries,
            wide,
            space,
        })
    }

    /// Code `k`'s bytes: single bytes `01-7F`, then two (lead `C0-EF`, trail `80-BF`), then
    /// three (lead `F0-FF`, two trails).
    fn entry(k: u32, ascii: bool) -> u32 {
        let (bytes, len) = if k < 128 {
            (k, 1)
        } else if k < 3200 {
            let i = k - 128;
            ((0xC0 | (i >> 6)) | ((0x80 | (i & 63)) << 8), 2)
        } else {
            let i = k - 3200;
            (
                (0xF0 | ((i >> 12) & 15))
                    | ((0x80 | ((i >> 6) & 63)) << 8)
                    | ((0x80 | (i & 63)) << 16),
                3,
            )
        };
        bytes | (len << LEN_SHIFT) | if ascii { ASCII } else { 0 }
    }

    /// The code of a character outside the table (rare).
    fn wide_code(&self, cp: u32) -> u32 {
        char::from_u32(cp)
            .map(fold)
            .and_then(|c| self.wide.get(&c).copied())
            .unwrap_or(0)
    }

    /// Appends the codes of `text` to `codes`.
    ///
    /// One table load and one store per character, and no data-dependent branch on the
    /// common path: petition text alternates at random between keyword characters and others.
    /// The vector is worked on as a local (taken and put back), so its length and capacity
    /// stay in registers instead of being reloaded through the reference at every push.
    pub fn codes_into(&self, text: &str, codes: &mut Vec<u32>) {
        let mut out = std::mem::take(codes);
        out.reserve(text.len() + 1);
        let mut prev = 0u32;
        let mut space = false;
        // Slice patterns decode without bounds checks (the text is valid UTF-8, so a lead
        // byte is always followed by its continuation bytes). Chinese text is almost all
        // three-byte sequences: that arm comes first.
        let mut rest = text.as_bytes();
        loop {
            let (t, cp, tail) = match *rest {
                [b0 @ 0xE0..=0xEF, b1, b2, ref tail @ ..] => {
                    let cp = (u16::from(b0 & 0x0F) << 12)
                        | (u16::from(b1 & 0x3F) << 6)
                        | u16::from(b2 & 0x3F);
                    (self.table[usize::from(cp)], u32::from(cp), tail)
                }
                [b0 @ 0..=0x7F, ref tail @ ..] => {
                    (self.table[usize::from(b0)], u32::from(b0), tail)
                }
                [b0 @ 0xC0..=0xDF, b1, ref tail @ ..] => {
                    let cp = (u16::from(b0 & 0x1F) << 6) | u16::from(b1 & 0x3F);
                    (self.table[usize::from(cp)], u32::from(cp), tail)
                }
                [b0, b1, b2, b3, ref tail @ ..] => {
                    let cp = (u32::from(b0 & 0x07) << 18)
                        | (u32::from(b1 & 0x3F) << 12)
                        | (u32::from(b2 & 0x3F) << 6)
                        | u32::from(b3 & 0x3F);
                    (WIDE, cp, tail)
                }
                _ => break,
            };
            rest = tail;
            let code = if t >= WIDE {
                match t {
                    DROP => continue,
                    SPACE => {
                        space = true;
                        continue;
                    }
                    _ => self.wide_code(cp),
                }
            } else {
                u32::from(t)
            };
            if space {
                // Whitespace between two keyword characters: nothing between two non-ASCII
                // ones, else a space. Next to anything else the 0 says it all.
                space = false;
                let ascii = |k: u32| self.entries[k as usize] & ASCII != 0;
                if prev != 0 && code != 0 && (ascii(prev) || ascii(code)) {
                    out.push(self.space);
                }
            }
            out.push(code);
            prev = code;
        }
        *codes = out;
    }

    /// The codes of an item's title and content, with a 0 between them.
    pub fn codes_item(&self, title: &str, content: &str, codes: &mut Vec<u32>) {
        self.codes_into(title, codes);
        codes.push(0);
        self.codes_into(content, codes);
    }

    /// One normalised keyword, as the bytes the automaton matches.
    pub fn encode(&self, keyword: &str) -> Vec<u8> {
        let mut codes = Vec::with_capacity(keyword.len());
        self.codes_into(keyword, &mut codes);
        let mut out = Vec::with_capacity(keyword.len());
        for k in codes {
            let e = self.entries[k as usize];
            for j in 0..(e >> LEN_SHIFT) & 3 {
                out.push((e >> (8 * j)) as u8);
            }
        }
        out
    }
}

/// Where a keyword may start: for every hashed pair of adjacent codes, one bit per group of
/// keywords (at most two: the dictionaries' and the rules'), set when the pair begins some
/// keyword of that group (and likewise for one-character keywords, hashed alone). A petition's
/// characters are tested independently of each other (no chain of dependent loads, unlike an
/// automaton walk), and the automata then run only from the few positions that pass. The two
/// groups' bits of a pair sit side by side, so one hash and one load answer for both.
#[derive(Clone)]
struct StartFilter {
    /// Two bits per slot: bit 0 for group 0, bit 1 for group 1.
    bits: Box<[u64]>,
    /// `64 - log2(slots)`: a hash is the top bits of one multiplication.
    shift: u32,
    /// Some keyword is one character long (then every character is tested alone too).
    singles: bool,
}

impl StartFilter {
    /// Most groups one filter holds.
    const GROUPS: usize = 2;

    /// About 32 slots per keyword (2^14 at least, 2^22 at most): 10,000 rules' and the
    /// dictionaries' ~20,000 first pairs take 2^20 slots (256 KB) and set ~2% of them. A false
    /// start costs one short walk.
    fn build(groups: &[&[Vec<u32>]]) -> StartFilter {
        assert!(groups.len() <= Self::GROUPS, "at most two keyword groups");
        let total: usize = groups.iter().map(|g| g.len()).sum();
        let log = (total * 32)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(14, 22);
        let mut f = StartFilter {
            bits: vec![0u64; (1usize << log) * 2 / 64].into_boxed_slice(),
            shift: 64 - log,
            singles: false,
        };
        for (g, keywords) in groups.iter().enumerate() {
            for k in *keywords {
                let h = match k.as_slice() {
                    [] => continue,
                    [one] => {
                        f.singles = true;
                        Self::hash(*one, u32::MAX)
                    }
                    [a, b, ..] => Self::hash(*a, *b),
                };
                let i = f.slot(h);
                f.bits[i / 32] |= 1 << (2 * (i % 32) + g);
            }
        }
        f
    }

    #[inline(always)]
    fn hash(a: u32, b: u32) -> u64 {
        ((u64::from(a) << 32) | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[inline(always)]
    fn slot(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    /// The two group bits of a hash (bit 0: group 0, bit 1: group 1).
    #[inline(always)]
    fn test(&self, h: u64) -> u64 {
        let i = self.slot(h);
        (self.bits[i / 32] >> (2 * (i % 32))) & 3
    }

    /// Writes to `out[g]` every index of `codes` where a keyword of group `g` may start (a
    /// superset of the real starts, ascending, each once) and returns how many per group;
    /// each `out[g]` is grown to `codes.len()` when shorter and never shrunk, and what lies
    /// past its count is stale.
    ///
    /// A pass of its own over the codes, after encoding: a tight loop without calls or
    /// data-dependent branches, where a candidate is written unconditionally and kept by
    /// advancing the count by the test's outcome. (Testing inside the encoding loop, with a
    /// branch and a push per hit, was slower: petition text passes and fails the test at
    /// random, so those branches were mispredicted; see ARCHITECTURE.md for the figures.)
    fn starts(&self, codes: &[u32], out: &mut [Vec<u32>; 2]) -> [usize; 2] {
        for o in out.iter_mut() {
            if o.len() < codes.len() {
                o.resize(codes.len(), 0);
            }
        }
        let [o0, o1] = out;
        if self.singles {
            self.starts_imp::<true>(codes, o0, o1)
        } else {
            self.starts_imp::<false>(codes, o0, o1)
        }
    }

    #[inline(always)]
    fn starts_imp<const SINGLES: bool>(
        &self,
        codes: &[u32],
        o0: &mut [u32],
        o1: &mut [u32],
    ) -> [usize; 2] {
        let (o0, o1) = (&mut o0[..codes.len()], &mut o1[..codes.len()]);
        let (mut m0, mut m1) = (0, 0);
        let Some((&first, rest)) = codes.split_first() else {
            return [0, 0];
        };
        let mut a = first;
        for (i, &b) in rest.iter().enumerate() {
            let both = u64::from((a != 0) & (b != 0));
            let mut hit = self.test(Self::hash(a, b)) & (both | (both << 1));
            if SINGLES {
                let one = u64::from(a != 0);
                hit |= self.test(Self::hash(a, u32::MAX)) & (one | (one << 1));
            }
            // m0, m1 <= i < codes.len()
            o0[m0] = i as u32;
            o1[m1] = i as u32;
            m0 += (hit & 1) as usize;
            m1 += (hit >> 1) as usize;
            a = b;
        }
        if SINGLES && a != 0 {
            let hit = self.test(Self::hash(a, u32::MAX));
            let last = (codes.len() - 1) as u32;
            o0[m0] = last;
            o1[m1] = last;
            m0 += (hit & 1) as usize;
            m1 += (hit >> 1) as usize;
        }
        [m0, m1]
    }
}

/// Largest DFA built; beyond, the contiguous NFA. A DFA row holds every byte class (hundreds
/// of bytes per state), so even a few hundred keywords make a DFA that falls out of L1/L2
/// cache, while the NFA's sparse states stay in it: walks are short, and a cache miss costs
/// more than the NFA's extra instructions.
const DFA_MAX_BYTES: usize = 64 << 10;

/// An automaton, walked anchored from each candidate start: a DFA while tiny, else the
/// contiguous NFA (memory linear in the keywords).
#[derive(Clone, Debug)]
enum Engine {
    Dfa(aho_corasick::dfa::DFA),
    Nfa(aho_corasick::nfa::contiguous::NFA),
}

impl Engine {
    fn build(encoded: &[Vec<u8>]) -> Result<Engine, aho_corasick::BuildError> {
        use aho_corasick::{MatchKind, StartKind};
        let states: usize = encoded.iter().map(Vec::len).sum::<usize>() + 1;
        let mut seen = [false; 256];
        for p in encoded {
            for &b in p {
                seen[b as usize] = true;
            }
        }
        let classes = seen.iter().filter(|b| **b).count() + 1;
        if states.saturating_mul(classes).saturating_mul(4) <= DFA_MAX_BYTES {
            aho_corasick::dfa::DFA::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Anchored)
                .prefilter(false)
                .build(encoded)
                .map(Engine::Dfa)
        } else {
            aho_corasick::nfa::contiguous::NFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(encoded)
                .map(Engine::Nfa)
        }
    }

    /// Every keyword starting at code `start`: `f(pattern, index after its last code)`.
    #[inline]
    fn walk(&self, entries: &[u32], codes: &[u32], start: usize, f: &mut impl FnMut(u32, usize)) {
        match self {
            Engine::Dfa(a) => walk(a, entries, codes, start, f),
            Engine::Nfa(a) => walk(a, entries, codes, start, f),
        }
    }

    fn memory_usage(&self) -> usize {
        use aho_corasick::automaton::Automaton;
        match self {
            Engine::Dfa(a) => a.memory_usage(),
            Engine::Nfa(a) => a.memory_usage(),
        }
    }
}

#[inline]
fn walk<A: aho_corasick::automaton::Automaton>(
    a: &A,
    entries: &[u32],
    codes: &[u32],
    start: usize,
    f: &mut impl FnMut(u32, usize),
) {
    use aho_corasick::Anchored;
    let Ok(mut sid) = a.start_state(Anchored::Yes) else {
        return;
    };
    let mut consumed = 0;
    for (off, &code) in codes[start..].iter().enumerate() {
        if code == 0 {
            return; // no keyword spans a non-keyword character
        }
        let e = entries[code as usize];
        let n = ((e >> LEN_SHIFT) & 3) as usize;
        for j in 0..n {
            sid = a.next_state(Anchored::Yes, sid, (e >> (8 * j)) as u8);
            if a.is_special(sid) && a.is_dead(sid) {
                return;
            }
        }
        consumed += n;
        if a.is_special(sid) && a.is_match(sid) {
            // A match state also reports the keywords that end here but start later
            // (suffixes, through the failure links): those are found from their own start.
            for i in 0..a.match_len(sid) {
                let p = a.match_pattern(sid, i);
                if a.pattern_len(p) == consumed {
                    f(p.as_u32(), start + off + 1);
                }
            }
        }
    }
}

/// One group of keywords: its automaton and its first pattern id.
#[derive(Clone)]
struct Part {
    engine: Engine,
    offset: u32,
}

/// Every keyword, compiled once: one alphabet, and one Aho-Corasick automaton per group of
/// keywords (two for the rules engine: the dictionaries', small and hot in cache, walked from
/// the many places a dictionary word occurs; the rules', possibly large, walked only from the
/// few places one of its keywords may start). [`Matcher::find`] reports every (overlapping)
/// occurrence of every keyword in an item's normalised title and content; the pattern id is
/// the keyword's index.
#[derive(Clone)]
pub struct Matcher {
    alphabet: Alphabet,
    filter: StartFilter,
    parts: Vec<Part>,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({} bytes of automata)", self.automaton_bytes())
    }
}

/// Reusable per-thread buffers: the hot path allocates nothing in the steady state.
#[derive(Default)]
struct Scratch {
    codes: Vec<u32>,
    starts: [Vec<u32>; 2],
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Matcher {
    /// Compiles normalised keywords, in groups: `groups` are the ends of consecutive ranges
    /// of `keywords` (e.g. `[dictionary_count, keywords.len()]`); empty groups are skipped.
    pub fn new(keywords: &[String], groups: &[usize]) -> Result<Matcher, String> {
        let alphabet = Alphabet::build(keywords.iter().map(String::as_str))?;
        let mut parts = Vec::new();
        let mut group_codes: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut from = 0;
        for &to in groups {
            let group = &keywords[from..to.min(keywords.len())];
            if !group.is_empty() {
                if parts.len() == StartFilter::GROUPS {
                    return Err(format!(
                        "at most {} keyword groups are supported",
                        StartFilter::GROUPS
                    ));
                }
                let encoded: Vec<Vec<u8>> = group.iter().map(|k| alphabet.encode(k)).collect();
                group_codes.push(
                    group
                        .iter()
                        .map(|k| {
                            let mut c = Vec::new();
                            alphabet.codes_into(k, &mut c);
                            c
                        })
                        .collect(),
                );
                parts.push(Part {
                    engine: Engine::build(&encoded)
                        .map_err(|e| format!("keyword automaton: {e}"))?,
                    offset: from as u32,
                });
            }
            from = to;
        }
        let refs: Vec<&[Vec<u32>]> = group_codes.iter().map(Vec::as_slice).collect();
        let filter = StartFilter::build(&refs);
        Ok(Matcher {
            alphabet,
            filter,
            parts,
        })
    }

    /// Calls `f(pattern, start, end)` for every keyword occurrence in the item (offsets are
    /// code indices: only their order and containment mean anything). Not re-entrant: `f`
    /// must not call `find`.
    pub fn find(&self, title: &str, content: &str, mut f: impl FnMut(u32, u32, u32)) {
        SCRATCH.with(|s| {
            let mut guard = s.borrow_mut();
            let Scratch { codes, starts } = &mut *guard;
            codes.clear();
            let a = &self.alphabet;
            a.codes_item(title, content, codes);
            let counts = self.filter.starts(codes, starts);
            for ((part, st), n) in self.parts.iter().zip(starts.iter()).zip(counts) {
                for &s in &st[..n] {
                    part.engine
                        .walk(&a.entries, codes, s as usize, &mut |p, end| {
                            f(p + part.offset, s, end as u32)
                        });
                }
            }
        });
    }

    /// Every keyword occurring inside a normalised keyword (for validation), with repeats.
    pub fn find_in_keyword(&self, keyword: &str) -> Vec<u32> {
        let mut codes = Vec::new();
        self.alphabet.codes_into(keyword, &mut codes);
        let mut out = Vec::new();
        for part in &self.parts {
            for s in 0..codes.len() {
                part.engine
                    .walk(&self.alphabet.entries, &codes, s, &mut |p, _| {
                        out.push(p + part.offset)
                    });
            }
        }
        out
    }

    /// Bytes of automata.
    pub fn automaton_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.engine.memory_usage()).sum()
    }

    /// The alphabet (for benchmarks).
    pub fn alphabet(&self) -> &Alphabet {
        &self.alphabet
    }
}

// ---------------------------------------------------------------------------------------------
// Dictionaries

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDictionary {
    category: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    service_codes: BTreeMap<String, u32>,
    #[serde(default)]
    keywords: BTreeMap<String, u32>,
}

/// One keyword of one dictionary.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As written in the dictionary (what `explain` shows).
    pub keyword: String,
    pub category: Category,
    pub weight: u32,
    pub file: String,
    pub line: Option<usize>,
}

/// One upstream service code of one dictionary.
#[derive(Debug, Clone)]
pub struct CodeEntry {
    pub code: String,
    pub category: Category,
    pub weight: u32,
    pub file: String,
    pub line: Option<usize>,
}

/// All dictionaries, validated, with their keywords numbered as automaton patterns.
#[derive(Debug, Clone, Default)]
pub struct Dictionaries {
    entries: Vec<Entry>,
    /// Distinct normalised keywords; the index is the Aho-Corasick pattern id (routing::rules
    /// appends its own keywords after these).
    patterns: Vec<String>,
    /// Pattern id → entries (more than one only when two categories share a keyword, which is
    /// a warning).
    pattern_entries: Vec<Vec<u32>>,
    codes: Vec<CodeEntry>,
    /// Normalised service code → index in `codes`.
    code_index: HashMap<String, u32>,
    /// (file name, content) of every file, for the rules version.
    sources: Vec<(String, String)>,
}

/// Normalises an upstream service code for comparison: trimmed, half-width, lower case.
pub fn normalize_code(code: &str) -> String {
    normalize(code.trim())
}

impl Dictionaries {
    /// Reads every `*.toml` file in `dir` (sorted by name) and parses them.
    pub fn load_dir(dir: &Path) -> Result<(Dictionaries, Vec<ConfigError>), Diagnostics> {
        Dictionaries::parse(&read_toml_dir(dir)?)
    }

    /// Parses dictionary files given as (file name, content). The version hash uses only the
    /// final path component of each name, so moving the directory keeps the version.
    pub fn parse(
        files: &[(String, String)],
    ) -> Result<(Dictionaries, Vec<ConfigError>), Diagnostics> {
        let mut d = Diagnostics::default();
        let mut out = Dictionaries::default();
        // normalised keyword → (pattern id)
        let mut pattern_ids: HashMap<String, u32> = HashMap::new();
        for (name, text) in files {
            let base = Path::new(name)
                .file_name()
                .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
            out.sources.push((base, text.clone()));
            let src = match TomlFile::parse(name, text) {
                Ok(s) => s,
                Err(e) => {
                    d.errors.push(e);
                    continue;
                }
            };
            let Some(raw) = src.deserialize::<RawDictionary>(&mut d.errors) else {
                continue;
            };
            let Some(category) = parse_category(&raw.category) else {
                d.errors.push(src.err(
                    "category",
                    format!(
                        "`{}` is not one of livelihood, rights, policy, historical",
                        raw.category
                    ),
                ));
                continue;
            };
            for (code, &weight) in &raw.service_codes {
                let path = format!(
                    "service_codes.{}",
                    crate::config::toml_file::quote_key(code)
                );
                let norm = normalize_code(code);
                if norm.is_empty() {
                    d.errors
                        .push(src.err(&path, "service code must not be empty"));
                    continue;
                }
                if weight == 0 || weight > MAX_WEIGHT {
                    d.errors
                        .push(src.err(&path, format!("weight must be between 1 and {MAX_WEIGHT}")));
                    continue;
                }
                let line = src.line(&path);
                if let Some(&prev) = out.code_index.get(&norm) {
                    let p = &out.codes[prev as usize];
                    d.errors.push(src.err(
                        &path,
                        format!(
                            "service code `{code}` is already mapped to {} in {}{}",
                            p.category.as_str(),
                            p.file,
                            p.line.map(|l| format!(":{l}")).unwrap_or_default()
                        ),
                    ));
                    continue;
                }
                out.code_index.insert(norm, out.codes.len() as u32);
                out.codes.push(CodeEntry {
                    code: code.clone(),
                    category,
                    weight,
                    file: name.clone(),
                    line,
                });
            }
            if raw.keywords.is_empty() {
                d.warnings.push(src.err(
                    "keywords",
                    format!(
                        "no keywords: nothing is classified as {}",
                        category.as_str()
                    ),
                ));
            }
            for (kw, &weight) in &raw.keywords {
                let path = format!("keywords.{}", crate::config::toml_file::quote_key(kw));
                let norm = normalize(kw);
                if norm.is_empty() {
                    d.errors.push(src.err(&path, "keyword must not be empty"));
                    continue;
                }
                if weight == 0 || weight > MAX_WEIGHT {
                    d.errors
                        .push(src.err(&path, format!("weight must be between 1 and {MAX_WEIGHT}")));
                    continue;
                }
                if norm.chars().count() == 1 {
                    d.warnings.push(src.err(
                        &path,
                        "a one-character keyword matches far too much; use a word",
                    ));
                }
                let line = src.line(&path);
                let pid = *pattern_ids.entry(norm.clone()).or_insert_with(|| {
                    out.patterns.push(norm.clone());
                    out.pattern_entries.push(Vec::new());
                    (out.patterns.len() - 1) as u32
                });
                let mut duplicate = false;
                for &e in &out.pattern_entries[pid as usize] {
                    let prev = &out.entries[e as usize];
                    let at = format!(
                        "{}{}",
                        prev.file,
                        prev.line.map(|l| format!(":{l}")).unwrap_or_default()
                    );
                    if prev.category == category {
                        d.errors.push(src.err(
                            &path,
                            format!(
                                "`{kw}` is the same keyword as `{}` ({at}) after normalisation",
                                prev.keyword
                            ),
                        ));
                        duplicate = true;
                    } else {
                        d.warnings.push(src.err(
                            &path,
                            format!(
                                "`{kw}` is also a {} keyword (`{}`, {at}): it counts for both \
                                 categories, which makes ties more likely",
                                prev.category.as_str(),
                                prev.keyword
                            ),
                        ));
                    }
                }
                if duplicate {
                    continue;
                }
                out.pattern_entries[pid as usize].push(out.entries.len() as u32);
                out.entries.push(Entry {
                    keyword: kw.clone(),
                    category,
                    weight,
                    file: name.clone(),
                    line,
                });
            }
        }
        if files.is_empty() {
            d.warnings.push(ConfigError {
                file: "dictionaries".into(),
                line: None,
                path: String::new(),
                message: "no dictionary files: every item is unclassified".into(),
            });
        }
        if d.errors.is_empty() {
            Ok((out, d.warnings))
        } else {
            Err(d)
        }
    }

    /// Every keyword entry.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every service code entry.
    pub fn service_codes(&self) -> &[CodeEntry] {
        &self.codes
    }

    /// Distinct normalised keywords, in pattern-id order.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub(crate) fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// What [`Dictionaries::score`] decides (category and scores) without listing the hits:
    /// the routing hot path. `code` is already normalised ([`normalize_code`]); `seen` is a
    /// scratch buffer.
    pub(crate) fn score_only(
        &self,
        spans: &mut [Span],
        code: Option<&str>,
        seen: &mut Vec<u32>,
    ) -> (Option<Category>, Scores) {
        if !spans.is_sorted_by_key(|s| (s.start, s.end)) {
            spans.sort_unstable_by_key(|s| (s.start, s.end));
        }
        seen.clear();
        let mut scores = Scores::default();
        let mut max_end = 0;
        for (i, s) in spans.iter().enumerate() {
            let last_at_start = spans.get(i + 1).is_none_or(|n| n.start != s.start);
            if last_at_start && s.end > max_end {
                max_end = s.end;
                if seen.contains(&s.pattern) {
                    continue;
                }
                seen.push(s.pattern);
                for &e in &self.pattern_entries[s.pattern as usize] {
                    let entry = &self.entries[e as usize];
                    scores.0[category_index(entry.category)] += entry.weight;
                }
            }
        }
        if let Some(&i) = code.and_then(|c| self.code_index.get(c)) {
            let entry = &self.codes[i as usize];
            scores.0[category_index(entry.category)] += entry.weight;
        }
        (scores.best().0, scores)
    }

    /// Scores the dictionary hits of one item. `spans` holds every occurrence of a dictionary
    /// pattern (ids below `patterns().len()`), in any order; it is sorted (a no-op for what
    /// [`Matcher::find`] reports).
    pub fn score(&self, spans: &mut [Span], service_code: Option<&str>) -> Classification<'_> {
        if !spans.is_sorted_by_key(|s| (s.start, s.end)) {
            spans.sort_unstable_by_key(|s| (s.start, s.end));
        }
        // Of the spans starting at one place the last is the longest; an earlier-starting span
        // that ends at or after it contains it (two distinct spans cannot be equal: equal text
        // is the same pattern). Only spans contained in no other count.
        let mut counted: Vec<u32> = Vec::with_capacity(spans.len());
        let mut max_end = 0;
        for (i, s) in spans.iter().enumerate() {
            let last_at_start = spans.get(i + 1).is_none_or(|n| n.start != s.start);
            if last_at_start && s.end > max_end {
                counted.push(s.pattern);
                max_end = s.end;
            }
        }
        let mut scores = Scores::default();
        let mut hits = Vec::new();
        // Text order of first occurrence, each keyword once.
        let mut seen: Vec<u32> = Vec::with_capacity(counted.len());
        for p in counted {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            for &e in &self.pattern_entries[p as usize] {
                let entry = &self.entries[e as usize];
                scores.0[category_index(entry.category)] += entry.weight;
                hits.push(Hit {
                    keyword: &entry.keyword,
                    category: entry.category,
                    weight: entry.weight,
                });
            }
        }
        let code = service_code.and_then(|c| {
            let i = *self.code_index.get(&normalize_code(c))?;
            let entry = &self.codes[i as usize];
            scores.0[category_index(entry.category)] += entry.weight;
            Some(CodeHit {
                code: &entry.code,
                category: entry.category,
                weight: entry.weight,
            })
        });
        let (category, tie) = scores.best();
        Classification {
            category,
            tie,
            scores,
            hits,
            service_code: code,
        }
    }
}

/// One occurrence of a pattern (offsets in any monotonic coordinates of the text: only
/// containment between spans is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub pattern: u32,
    pub start: u32,
    pub end: u32,
}

/// Scores per category, indexed as [`CATEGORIES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scores(pub [u32; 4]);

impl Scores {
    pub fn get(&self, c: Category) -> u32 {
        self.0[category_index(c)]
    }

    /// The winning category, and whether the top score was tied.
    fn best(&self) -> (Option<Category>, bool) {
        let max = *self.0.iter().max().unwrap_or(&0);
        if max == 0 {
            return (None, false);
        }
        let mut top = CATEGORIES.iter().zip(self.0).filter(|(_, s)| *s == max);
        let first = top.next().map(|(c, _)| *c);
        if top.next().is_some() {
            (None, true)
        } else {
            (first, false)
        }
    }
}

impl fmt::Display for Scores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in CATEGORIES.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", c.as_str(), self.0[i])?;
        }
        Ok(())
    }
}

/// A dictionary keyword found in an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'d> {
    /// As written in the dictionary.
    pub keyword: &'d str,
    pub category: Category,
    pub weight: u32,
}

/// The item's service code, when a dictionary maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeHit<'d> {
    pub code: &'d str,
    pub category: Category,
    pub weight: u32,
}

/// The classifier's answer for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification<'d> {
    /// `None`: unclassified (no keyword at all, or a tie for the top score).
    pub category: Option<Category>,
    /// True when the item is unclassified because two or more categories tied.
    pub tie: bool,
    pub scores: Scores,
    /// Dictionary keywords found, each once, in order of first occurrence.
    pub hits: Vec<Hit<'d>>,
    pub service_code: Option<CodeHit<'d>>,
}

impl fmt::Display for Classification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.category, self.tie) {
            (Some(c), _) => write!(f, "{}", c.as_str())?,
            (None, true) => f.write_str("unclassified (tie)")?,
            (None, false) => f.write_str("unclassified (no keyword)")?,
        }
        write!(f, " — scores: {}", self.scores)?;
        if let Some(c) = &self.service_code {
            write!(
                f,
                "; service code {} → {} +{}",
                c.code,
                c.category.as_str(),
                c.weight
            )?;
        }
        if !self.hits.is_empty() {
            f.write_str("; keywords:")?;
            for h in &self.hits {
                write!(f, " {}({} +{})", h.keyword, h.category.as_str(), h.weight)?;
            }
        }
        Ok(())
    }
}

/// Dictionaries with an automaton of their own: classification without routing rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    dicts: Dictionaries,
    matcher: Matcher,
}

impl Classifier {
    pub fn new(dicts: Dictionaries) -> Result<Self, String> {
        let matcher = Matcher::new(&dicts.patterns, &[dicts.patterns.len()])?;
        Ok(Self { dicts, matcher })
    }

    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dicts
    }

    /// Classifies an item by its title, content and upstream service code.
    pub fn classify(
        &self,
        title: &str,
        content: &str,
        service_code: Option<&str>,
    ) -> Classification<'_> {
        let mut spans = Vec::new();
        self.matcher.find(title, content, |pattern, start, end| {
            spans.push(Span {
                pattern,
                start,
                end,
            })
        });
        self.dicts.score(&mut spans, service_code)
    }
}

/// Short hash of the dictionaries' files (names and contents), as a model records the
/// dictionaries it was fitted with.
pub fn dictionaries_version(d: &Dictionaries) -> String {
    use sha2::{Digest, Sha256};
    let mut sources: Vec<&(String, String)> = d.sources().iter().collect();
    sources.sort();
    let mut h = Sha256::new();
    for (name, text) in sources {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(text.as_bytes());
        h.update(b"\0");
    }
    hex::encode(&h.finalize()[..6])
}

/// Reads every `*.toml` in a directory, sorted by name, as (path, content).
pub(crate) fn read_toml_dir(dir: &Path) -> Result<Vec<(String, String)>, Diagnostics> {
    let fail = |file: &Path, e: std::io::Error| Diagnostics {
        errors: vec![ConfigError {
            file: file.display().to_string(),
            line: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }],
        warnings: Vec::new(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let p = entry.map_err(|e| fail(dir, e))?.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let t = std::fs::read_to_string(&p).map_err(|e| fail(&p, e))?;
        files.push((p.display().to_string(), t));
    }
    Ok(files)
}

/// Title and content normalised and joined by a line break, which no keyword spans.
pub fn normalized_item_text(title: &str, content: &str) -> String {
    let mut text = String::with_capacity(title.len() + content.len() + 1);
    normalize_into(title, &mut text);
    text.push('\n');
    normalize_into(content, &mut text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_width_case_script_and_spaces() {
        let cases = [
            ("拖欠工资３个月", "拖欠工资3个月"),
            ("ＡＢＣ１２３，（注）", "abc123,(注)"),
            ("拆遷補償款", "拆迁补偿款"),
            ("十餘年來長期未解決", "十余年来长期未解决"),
            ("醫保報銷", "医保报销"),
            ("拖欠\n工资", "拖欠工资"),
            ("拖欠　 工资", "拖欠工资"),
            ("Open311  API", "open311 api"),
            ("费用 300 元", "费用 300 元"),
            ("  前后空白  ", "前后空白"),
            ("零\u{200B}宽", "零宽"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input}");
        }
    }

    #[test]
    fn fold_table_is_idempotent_and_consistent() {
        let mut seen: HashMap<char, char> = HashMap::new();
        for pair in TRAD_SIMP.split_whitespace() {
            let cs: Vec<char> = pair.chars().collect();
            assert_eq!(cs.len(), 2, "malformed pair {pair:?}");
            assert_ne!(cs[0], cs[1], "identity pair {pair:?}");
            if let Some(prev) = seen.insert(cs[0], cs[1]) {
                assert_eq!(prev, cs[1], "{} maps to both {prev} and {}", cs[0], cs[1]);
            }
        }
        for (&t, &s) in &seen {
            assert_eq!(fold(s), s, "{t}→{s}, but {s} folds again");
            assert_eq!(fold(t), s);
        }
    }

    /// The encoded automaton finds a keyword exactly when the normalised text contains it, on
    /// random text mixing keyword characters, other characters, traditional and full-width
    /// forms, whitespace, zero-width characters and a character outside the BMP.
    #[test]
    fn encoding_matches_exactly_the_normalised_substrings() {
        let keywords = [
            "拖欠工资",
            "工资",
            "欠",
            "拆迁",
            "open 311",
            "abc",
            "a",
            "𠀀甲",
            "1号楼",
            "补偿款",
        ];
        let norm: Vec<String> = keywords.iter().map(|k| normalize(k)).collect();
        let matcher = Matcher::new(&norm, &[4, norm.len()]).unwrap();
        let pieces = [
            "拖",
            "欠",
            "工",
            "资",
            "拆",
            "遷",
            "迁",
            "補",
            "偿",
            "款",
            "的",
            "。",
            " ",
            "\n",
            "\u{3000}",
            "\u{200B}",
            "Open",
            "ＯＰＥＮ",
            " ",
            "311",
            "３１１",
            "a",
            "Ａ",
            "b",
            "c",
            "x",
            "𠀀",
            "甲",
            "1",
            "１",
            "号",
            "號",
            "楼",
            "樓",
            "!",
            "！",
        ];
        let mut seed: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..20_000 {
            let (mut title, mut text) = (String::new(), String::new());
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = 1 + (seed % 12) as usize;
            let in_title = (seed >> 40) as usize % 4;
            let mut s2 = seed;
            for j in 0..n {
                s2 = s2
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let piece = pieces[(s2 >> 33) as usize % pieces.len()];
                if j < in_title { &mut title } else { &mut text }.push_str(piece);
            }
            let normalized = normalized_item_text(&title, &text);
            let mut found = vec![0usize; keywords.len()];
            matcher.find(&title, &text, |p, _, _| found[p as usize] += 1);
            for (i, k) in norm.iter().enumerate() {
                // Every occurrence, overlapping ones included, exactly once.
                let occurrences = (0..normalized.len())
                    .filter(|&b| {
                        normalized.is_char_boundary(b) && normalized[b..].starts_with(k.as_str())
                    })
                    .count();
                assert_eq!(
                    found[i], occurrences,
                    "keyword {k:?} in {title:?} / {text:?} (normalised {normalized:?})"
                );
            }
        }
    }

    #[test]
    fn shipped_dictionaries_load_cleanly_and_classify() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dictionaries");
        let (d, warnings) = Dictionaries::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        let files: Vec<Category> = d.entries().iter().map(|e| e.category).collect();
        for c in CATEGORIES {
            assert!(files.contains(&c), "no {} keywords", c.as_str());
        }
        let c = Classifier::new(d).unwrap();
        let cases = [
            ("關於拆遷補償", "补偿款一直沒有到位", Some(Category::Rights)),
            ("", "请问失业金如何申请？", Some(Category::Policy)),
            ("", "医保报销比例太低", Some(Category::Livelihood)),
            ("", "十多年前的问题至今未解决", Some(Category::Historical)),
            ("", "你好", None),
        ];
        for (title, content, want) in cases {
            assert_eq!(c.classify(title, content, None).category, want, "{content}");
        }
        let missing = Dictionaries::load_dir(&dir.join("nope")).unwrap_err();
        assert!(
            missing.errors[0].message.starts_with("cannot read"),
            "{missing}"
        );
    }

    fn dicts(files: &[(&str, &str)]) -> Result<(Dictionaries, Vec<ConfigError>), Diagnostics> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        Dictionaries::parse(&files)
    }

    const RIGHTS: &str = r#"
category = "rights"
[service_codes]
"LD01" = 5
[keywords]
"拖欠工资" = 4
"医疗纠纷" = 4
"拆迁" = 3
"#;
    const LIVELIHOOD: &str = r#"
category = "livelihood"
[keywords]
"医疗" = 2
"社保" = 3
"#;

    #[test]
    fn scores_keywords_once_and_longest_wins() {
        let (d, w) = dicts(&[("r.toml", RIGHTS), ("l.toml", LIVELIHOOD)]).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let c = Classifier::new(d).unwrap();
        let r = c.classify("医疗纠纷", "医院医疗纠纷，医疗费用；社保", None);
        // 医疗 inside 医疗纠纷 does not count; the free-standing 医疗 does.
        assert_eq!(r.scores.get(Category::Rights), 4);
        assert_eq!(r.scores.get(Category::Livelihood), 5);
        assert_eq!(r.category, Some(Category::Livelihood));
        let r = c.classify("", "拖欠工资拖欠工资", None);
        assert_eq!(r.scores.get(Category::Rights), 4);
        assert_eq!(r.hits.len(), 1);
    }

    #[test]
    fn ties_and_nothing_are_unclassified() {
        let (d, _) = dicts(&[("r.toml", RIGHTS), ("l.toml", LIVELIHOOD)]).unwrap();
        let c = Classifier::new(d).unwrap();
        let r = c.classify("", "拆迁，社保", None);
        assert_eq!((r.category, r.tie), (None, true));
        let r = c.classify("", "你好", None);
        assert_eq!((r.category, r.tie), (None, false));
        // The service code breaks the tie.
        let r = c.classify("", "拆迁，社保", Some("ld01"));
        assert_eq!(r.category, Some(Category::Rights));
        assert_eq!(r.scores.get(Category::Rights), 8);
    }

    #[test]
    fn dictionary_errors_name_file_line_and_key() {
        let bad = "category = \"rights\"\n[keywords]\n\"拆迁\" = 0\n\"拆遷\" = 2\n\"\" = 1\n";
        let e = dicts(&[("bad.toml", bad), ("x.toml", "category = \"nope\"\n")]).unwrap_err();
        let text: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("bad.toml:3: keywords.拆迁: weight")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("bad.toml:5: ") && t.contains("empty")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("x.toml:1: category")),
            "{text:?}"
        );
        let unknown = dicts(&[("u.toml", "category = \"rights\"\nweights = 1\n")]).unwrap_err();
        assert_eq!(unknown.errors[0].line, Some(2), "{:?}", unknown.errors);
    }

    #[test]
    fn same_keyword_after_normalisation_is_an_error_across_categories_a_warning() {
        let a = "category = \"rights\"\n[keywords]\n\"拆迁\" = 2\n\"拆遷\" = 2\n";
        let e = dicts(&[("a.toml", a)]).unwrap_err();
        assert!(e.errors[0].message.contains("same keyword"), "{e:?}");
        let b = "category = \"historical\"\n[keywords]\n\"拆遷\" = 2\n";
        let (_, w) = dicts(&[("r.toml", RIGHTS), ("b.toml", b)]).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].file, "b.toml");
        assert_eq!(w[0].line, Some(3));
    }
}
