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
use crate::diag::ConfigError;
use crate::diag::toml_file::TomlFile;
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

mod dictionaries;
mod matcher;
#[cfg(test)]
mod tests;

pub use dictionaries::*;
pub use matcher::*;
