//! Fake but realistic petitions for the simulators: petitioners in Hangzhou with valid-looking
//! ID numbers (ISO 7064 MOD 11-2 check digit) and mobiles written the ways people write them,
//! and requests across the four categories (livelihood, rights, policy, historical). Everything
//! is a pure function of `(seed, seq)`.

use crate::rng::Rng;

pub(crate) struct District {
    pub code: &'static str,
    pub name: &'static str,
    pub zipcode: &'static str,
    pub lat: f64,
    pub long: f64,
}

const DISTRICTS: [District; 6] = [
    District {
        code: "330102",
        name: "上城区",
        zipcode: "310002",
        lat: 30.2425,
        long: 120.1693,
    },
    District {
        code: "330105",
        name: "拱墅区",
        zipcode: "310011",
        lat: 30.3196,
        long: 120.1419,
    },
    District {
        code: "330106",
        name: "西湖区",
        zipcode: "310012",
        lat: 30.2595,
        long: 120.1301,
    },
    District {
        code: "330108",
        name: "滨江区",
        zipcode: "310051",
        lat: 30.2083,
        long: 120.2119,
    },
    District {
        code: "330109",
        name: "萧山区",
        zipcode: "311200",
        lat: 30.1853,
        long: 120.2645,
    },
    District {
        code: "330110",
        name: "余杭区",
        zipcode: "311100",
        lat: 30.4183,
        long: 120.3012,
    },
];

/// One kind of request: its service/matter code, the agency that handles it and templates for
/// title and text. The list covers the four categories: livelihood (SB, YB, LD02, JY), rights
/// (LD01, CQ, WQ), policy (ZC) and historical (LS) matters.
pub(crate) struct Matter {
    pub code: &'static str,
    pub service_name: &'static str,
    pub agency: &'static str,
    pub title: &'static str,
    body: &'static str,
}

const MATTERS: [Matter; 14] = [
    Matter {
        code: "SB01",
        service_name: "社会保险",
        agency: "市人力社保局",
        title: "单位未足额缴纳社保",
        body: "本人{name}，自{year}年起在{company}工作，单位一直未按实际工资足额缴纳社保，其中有{months}个月的社保缴费记录缺失，影响退休待遇核定。请求社保部门核查并督促单位补缴。",
    },
    Matter {
        code: "YB01",
        service_name: "医疗保障",
        agency: "市医保局",
        title: "异地就医医保报销难",
        body: "本人母亲今年在{hospital}住院治疗，医疗费用共计{amount}元。办理医保异地就医报销时被告知备案手续不全，先后跑了三次仍未办结，请求医保部门协调尽快报销。",
    },
    Matter {
        code: "LD01",
        service_name: "劳动保障监察",
        agency: "市人力社保局",
        title: "工地拖欠农民工工资",
        body: "我们{n}名农民工在{district}{project}工地务工，包工头拖欠工资共计{amount}元，已有{months}个月未发放，多次讨要无果，生活十分困难。请求劳动保障监察部门介入，帮助追讨欠薪。",
    },
    Matter {
        code: "LD02",
        service_name: "工资支付",
        agency: "市人力社保局",
        title: "企业拖欠工资",
        body: "本人在{company}上班，公司以经营困难为由连续{months}个月只发基本工资，拖欠绩效工资{amount}元。请求有关部门督促企业依法足额支付工资。",
    },
    Matter {
        code: "JY01",
        service_name: "就业服务",
        agency: "市人力社保局",
        title: "申请就业困难人员认定",
        body: "本人今年{age}岁，去年失业后一直在家，想申请就业困难人员认定和灵活就业社保补贴，社区工作人员说材料不全，也没讲清楚缺什么。请求告知办理流程并帮助推荐就业岗位。",
    },
    Matter {
        code: "CQ01",
        service_name: "征地拆迁",
        agency: "区征迁办",
        title: "拆迁补偿标准不公",
        body: "{community}旧城改造项目中，本户房屋面积{area}平方米，拆迁补偿标准明显低于周边同类项目，评估过程也不公开。请求依法重新评估，保障被拆迁户的合法权益。",
    },
    Matter {
        code: "CQ02",
        service_name: "征地补偿",
        agency: "区征迁办",
        title: "征地补偿款未发放到位",
        body: "{village}村集体土地于{year}年被征收，至今仍有部分村民的征地补偿款共计{amount}元未发放到位。村民多次向镇里反映，一直没有答复，请求核查补偿款去向并依法发放。",
    },
    Matter {
        code: "WQ01",
        service_name: "物业管理",
        agency: "市住建局",
        title: "物业占用公共绿地收费",
        body: "{community}物业公司擅自占用小区公共绿地改建停车位并向业主收取费用，业主多次维权无果。请求住建部门依法查处，维护业主的合法权益。",
    },
    Matter {
        code: "WQ02",
        service_name: "消费维权",
        agency: "市市场监管局",
        title: "预付卡商家关门维权",
        body: "本人在{street}一家健身房办理了预付卡，充值{amount}元，现商家突然关门，负责人联系不上，涉及会员上百人。请求市场监管部门帮助消费者维权、追回预付款。",
    },
    Matter {
        code: "ZC01",
        service_name: "政策咨询",
        agency: "市人力社保局",
        title: "灵活就业人员养老保险政策咨询",
        body: "本人是灵活就业人员，想咨询城镇职工养老保险的缴费基数如何选择、中断缴费后能否补缴，以及相关政策依据。",
    },
    Matter {
        code: "ZC02",
        service_name: "政策咨询",
        agency: "市住房保障局",
        title: "人才购房补贴政策咨询",
        body: "本人是{year}年毕业的硕士研究生，现在{district}工作，想咨询本市人才购房补贴政策的申请条件、补贴标准和办理渠道。",
    },
    Matter {
        code: "ZC03",
        service_name: "政策咨询",
        agency: "市医保局",
        title: "新生儿医保参保政策咨询",
        body: "咨询新生儿参加城乡居民医保的办理流程、所需材料及待遇享受时间，孩子出生在外地能否在本市参保。",
    },
    Matter {
        code: "LS01",
        service_name: "历史遗留问题",
        agency: "市住建局",
        title: "商品房多年未办理房产证",
        body: "本人于{year}年购买{community}商品房，因开发商未完成竣工验收，至今已{years}年仍未办理房产证，子女上学落户受影响。多年来业主多次反映未得到解决，请求有关部门协调处理。",
    },
    Matter {
        code: "LS02",
        service_name: "历史遗留问题",
        agency: "市国资委",
        title: "企业改制职工安置历史遗留问题",
        body: "{year}年原{company}改制时，本人等{n}名职工的身份置换金和工龄补偿问题至今未解决，属于历史遗留问题，已多年反复反映。请求相关部门研究解决。",
    },
];

/// Every kind of request the generator writes.
pub(crate) fn matters() -> &'static [Matter] {
    &MATTERS
}

const SURNAMES: [(&str, &str); 20] = [
    ("张", "zhang"),
    ("王", "wang"),
    ("李", "li"),
    ("赵", "zhao"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("周", "zhou"),
    ("吴", "wu"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("高", "gao"),
    ("罗", "luo"),
];

const GIVEN: [(&str, &str); 25] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("秀英", "xiuying"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀兰", "xiulan"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("桂英", "guiying"),
    ("建国", "jianguo"),
    ("国强", "guoqiang"),
];

const STREETS: [&str; 10] = [
    "文三路",
    "天目山路",
    "教工路",
    "莫干山路",
    "延安路",
    "解放路",
    "江南大道",
    "滨盛路",
    "市心中路",
    "文一西路",
];

const COMMUNITIES: [&str; 8] = [
    "翠苑一区",
    "古荡新村",
    "闸弄口新村",
    "嘉绿苑",
    "采荷新村",
    "朝晖六区",
    "星洲花园",
    "金色海岸",
];

const COMPANIES: [&str; 6] = [
    "杭州恒达建设工程有限公司",
    "浙江华信物流有限公司",
    "杭州瑞丰纺织有限公司",
    "杭州新世纪商贸有限公司",
    "杭州东方机械厂",
    "杭州明珠物业管理有限公司",
];

const HOSPITALS: [&str; 3] = [
    "浙江大学医学院附属第一医院",
    "杭州市第一人民医院",
    "浙江省人民医院",
];

const PROJECTS: [&str; 4] = ["安置房", "城东商业综合体", "地铁配套道路", "学校扩建"];

const VILLAGES: [&str; 5] = ["兰里", "长埭", "西安寺", "南庄兜", "东塘"];

const MAIL_DOMAINS: [&str; 4] = ["163.com", "126.com", "qq.com", "sina.com"];

/// The check character of an 18-character resident ID number (GB 11643, ISO 7064 MOD 11-2)
/// from its first 17 digits; `None` if they are not 17 ASCII digits.
pub fn id_check_digit(first17: &str) -> Option<char> {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(b"10X98765432"[(sum % 11) as usize] as char)
}

/// One generated petition and petitioner.
pub(crate) struct Petition {
    pub surname: &'static str,
    pub given: &'static str,
    /// As the petitioner wrote it: plain, with separators, +86/0086, sometimes full-width.
    pub phone: String,
    pub id_number: String,
    pub email: Option<String>,
    pub district: &'static District,
    pub address: String,
    pub address_id: String,
    pub lat: f64,
    pub long: f64,
    pub matter: &'static Matter,
    pub title: String,
    pub body: String,
}

fn phone(r: &mut Rng) -> String {
    let d = format!("1{}{:09}", r.range(3, 9), r.below(1_000_000_000));
    let (a, b, c) = (&d[..3], &d[3..7], &d[7..]);
    match r.below(100) {
        0..60 => d,
        60..70 => format!("{a}-{b}-{c}"),
        70..80 => format!("{a} {b} {c}"),
        80..90 => format!("+86 {d}"),
        90..95 => format!("+86-{a}-{b}-{c}"),
        95..98 => format!("0086{d}"),
        _ => d
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap_or(c))
            .collect(),
    }
}

fn id_number(r: &mut Rng, district: &District) -> String {
    let first17 = format!(
        "{}{}{:02}{:02}{:03}",
        district.code,
        r.range(1945, 2004),
        r.range(1, 12),
        r.range(1, 28),
        r.below(1000)
    );
    let check = id_check_digit(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

impl Petition {
    pub(crate) fn generate(seed: u64, seq: u64) -> Petition {
        let r = &mut Rng::for_record(seed, seq);
        let (surname, sur_py) = *r.pick(&SURNAMES);
        let (given, given_py) = *r.pick(&GIVEN);
        let district = r.pick(&DISTRICTS);
        let matter = r.pick(&MATTERS);
        let street = *r.pick(&STREETS);
        let community = *r.pick(&COMMUNITIES);
        let phone = phone(r);
        let id_number = id_number(r, district);
        let email = match r.below(4) {
            0 => Some(format!(
                "{sur_py}{given_py}{}@{}",
                r.range(60, 99),
                r.pick(&MAIL_DOMAINS)
            )),
            1 => Some(format!("{}@qq.com", r.range(10_000_000, 3_999_999_999))),
            _ => None,
        };
        let province = if r.one_in(3) { "" } else { "浙江省" };
        let address = format!(
            "{province}杭州市{}{street}{}号{community}{}幢{}单元{}室",
            district.name,
            r.range(1, 399),
            r.range(1, 30),
            r.range(1, 4),
            r.range(1, 18) * 100 + r.range(1, 4)
        );
        let address_id = format!("HZ{}{:08}", district.code, r.below(100_000_000));
        let lat = district.lat + (r.below(2001) as f64 - 1000.0) / 50_000.0;
        let long = district.long + (r.below(2001) as f64 - 1000.0) / 50_000.0;
        let name = format!("{surname}{given}");
        let mut body = matter.body.to_string();
        let fills: [(&str, String); 14] = [
            ("{name}", name),
            ("{year}", r.range(1998, 2024).to_string()),
            ("{years}", r.range(3, 20).to_string()),
            ("{months}", r.range(2, 18).to_string()),
            ("{amount}", (r.range(8, 900) * 100).to_string()),
            ("{n}", r.range(3, 60).to_string()),
            ("{age}", r.range(35, 58).to_string()),
            ("{area}", r.range(45, 180).to_string()),
            ("{company}", r.pick(&COMPANIES).to_string()),
            ("{hospital}", r.pick(&HOSPITALS).to_string()),
            ("{project}", r.pick(&PROJECTS).to_string()),
            ("{village}", r.pick(&VILLAGES).to_string()),
            ("{district}", district.name.to_string()),
            ("{community}", community.to_string()),
        ];
        for (k, v) in &fills {
            if body.contains(k) {
                body = body.replace(k, v);
            }
        }
        body = body.replace("{street}", street);
        Petition {
            surname,
            given,
            phone,
            id_number,
            email,
            district,
            address,
            address_id,
            lat: (lat * 1e6).round() / 1e6,
            long: (long * 1e6).round() / 1e6,
            matter,
            title: matter.title.to_string(),
            body,
        }
    }

    pub(crate) fn name(&self) -> String {
        format!("{}{}", self.surname, self.given)
    }

    /// `body` repeated until it is at least `bytes` long (an oversize record).
    pub(crate) fn long_body(&self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + self.body.len());
        while s.len() < bytes {
            s.push_str(&self.body);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_of_the_domain_example() {
        assert_eq!(id_check_digit("11010519491231002"), Some('X'));
        assert_eq!(id_check_digit("1101051949123100"), None);
    }

    #[test]
    fn generated_petitions_are_deterministic_and_plausible() {
        let phone_re =
            regex::Regex::new(r"^(\+86[- ]?|0086)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}$").unwrap();
        for seq in 1..500 {
            let p = Petition::generate(7, seq);
            let q = Petition::generate(7, seq);
            assert_eq!(
                (p.body.as_str(), p.phone.as_str()),
                (q.body.as_str(), q.phone.as_str())
            );
            assert!(!p.body.contains('{'), "unfilled template: {}", p.body);
            assert_eq!(p.id_number.len(), 18);
            assert_eq!(
                id_check_digit(&p.id_number[..17]),
                p.id_number.chars().last()
            );
            let ascii: String = p
                .phone
                .chars()
                .map(|c| match c {
                    '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap(),
                    c => c,
                })
                .collect();
            assert!(phone_re.is_match(&ascii), "phone {}", p.phone);
            assert!(p.address.contains("杭州市"));
        }
        assert_ne!(Petition::generate(7, 1).body, Petition::generate(8, 1).body);
    }
}
