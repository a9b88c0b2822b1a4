//! Routing throughput: classification + rule evaluation on ~2 KB petitions, single thread, with
//! 10, 1,000 and 10,000 generated rules, against a naive baseline in the same run (every rule
//! in order, every keyword with `str::contains`: `RuleSet::decide_naive`), with the shipped
//! classifier model (`config/model/classifier.bin`) and without it. Target: ≥ 100,000 items/s
//! per core at 10,000 rules with the model on.
//!
//! ```text
//! cargo bench --bench routing
//! ROUTING_BENCH_SIZES=10,1000 ROUTING_BENCH_SECS=0.2 ROUTING_BENCH_NAIVE_SECS=0.2 \
//!     cargo bench --bench routing          # a quick smoke run
//! ```
//!
//! Environment: `ROUTING_BENCH_SIZES` (comma-separated rule counts), `ROUTING_BENCH_SECS`
//! (time per measurement of the fast path, default 2), `ROUTING_BENCH_NAIVE_SECS` (same for the
//! baseline, default 2; 0 skips it), `ROUTING_BENCH_ITEMS` (distinct texts, default 256),
//! `ROUTING_BENCH_TEXT_BYTES` (text size, default 2048), `ROUTING_BENCH_VOCAB=dense` (see
//! below), `ROUTING_BENCH_DETAIL=1` (time normalisation and keyword finding alone too).
//! Each measurement runs five rounds and prints the fastest and the median: on a shared
//! machine the fastest round is the least disturbed. Run without `--bench` (as `cargo test
//! --benches` does) it is a short smoke test (10 and 1,000 rules, 50 ms per measurement).
//!
//! Generated rules look like an office's: mostly `keywords_any` of one to three distinct
//! words (place, company and project names), some `keywords_all`, `keywords_none`, channel,
//! `continue` and regex rules, a few without keywords (service code + region), and the default
//! last. Words are 2-4 characters from the 3,755 common characters (GB 2312 level 1); with
//! `ROUTING_BENCH_VOCAB=dense`, 3 characters from a pool of 124, so that every pair of pool
//! characters begins some keyword (a worst case for any automaton). No word contains another,
//! so the set validates (no unreachable rule). Texts are corpus petitions padded to size;
//! three in four carry one to three rule words.

use petitiond::envelope::Channel;
use petitiond::routing::model::Model;
use petitiond::routing::rules::{Input, RuleSet};
use std::collections::HashSet;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const DEPARTMENTS: [&str; 8] = [
    "intake-desk",
    "hrss",
    "housing",
    "natural-resources",
    "health",
    "civil-affairs",
    "policy-desk",
    "key-cases",
];

/// The 3,755 common characters (GB 2312 level 1), from which realistic names are made.
const COMMON: &str = concat!(
    "啊阿埃挨哎唉哀皑癌蔼矮艾碍爱隘鞍氨安俺按暗岸胺案肮昂盎凹敖熬翱袄傲奥懊澳芭捌扒叭",
    "吧笆八疤巴拔跋靶把耙坝霸罢爸白柏百摆佰败拜稗斑班搬扳般颁板版扮拌伴瓣半办绊邦帮梆",
    "榜膀绑棒磅蚌镑傍谤苞胞包褒剥薄雹保堡饱宝抱报暴豹鲍爆杯碑悲卑北辈背贝钡倍狈备惫焙",
    "被奔苯本笨崩绷甭泵蹦迸逼鼻比鄙笔彼碧蓖蔽毕毙毖币庇痹闭敝弊必辟壁臂避陛鞭边编贬扁",
    "便变卞辨辩辫遍标彪膘表鳖憋别瘪彬斌濒滨宾摈兵冰柄丙秉饼炳病并玻菠播拨钵波博勃搏铂",
    "箔伯帛舶脖膊渤泊驳捕卜哺补埠不布步簿部怖擦猜裁材才财睬踩采彩菜蔡餐参蚕残惭惨灿苍",
    "舱仓沧藏操糙槽曹草厕策侧册测层蹭插叉茬茶查碴搽察岔差诧拆柴豺搀掺蝉馋谗缠铲产阐颤",
    "昌猖场尝常长偿肠厂敞畅唱倡超抄钞朝嘲潮巢吵炒车扯撤掣彻澈郴臣辰尘晨忱沉陈趁衬撑称",
    "城橙成呈乘程惩澄诚承逞骋秤吃痴持匙池迟弛驰耻齿侈尺赤翅斥炽充冲虫崇宠抽酬畴踌稠愁",
    "筹仇绸瞅丑臭初出橱厨躇锄雏滁除楚础储矗搐触处揣川穿椽传船喘串疮窗幢床闯创吹炊捶锤",
    "垂春椿醇唇淳纯蠢戳绰疵茨磁雌辞慈瓷词此刺赐次聪葱囱匆从丛凑粗醋簇促蹿篡窜摧崔催脆",
    "瘁粹淬翠村存寸磋撮搓措挫错搭达答瘩打大呆歹傣戴带殆代贷袋待逮怠耽担丹单郸掸胆旦氮",
    "但惮淡诞弹蛋当挡党荡档刀捣蹈倒岛祷导到稻悼道盗德得的蹬灯登等瞪凳邓堤低滴迪敌笛狄",
    "涤翟嫡抵底地蒂第帝弟递缔颠掂滇碘点典靛垫电佃甸店惦奠淀殿碉叼雕凋刁掉吊钓调跌爹碟",
    "蝶迭谍叠丁盯叮钉顶鼎锭定订丢东冬董懂动栋侗恫冻洞兜抖斗陡豆逗痘都督毒犊独读堵睹赌",
    "杜镀肚度渡妒端短锻段断缎堆兑队对墩吨蹲敦顿囤钝盾遁掇哆多夺垛躲朵跺舵剁惰堕蛾峨鹅",
    "俄额讹娥恶厄扼遏鄂饿恩而儿耳尔饵洱二贰发罚筏伐乏阀法珐藩帆番翻樊矾钒繁凡烦反返范",
    "贩犯饭泛坊芳方肪房防妨仿访纺放菲非啡飞肥匪诽吠肺废沸费芬酚吩氛分纷坟焚汾粉奋份忿",
    "愤粪丰封枫蜂峰锋风疯烽逢冯缝讽奉凤佛否夫敷肤孵扶拂辐幅氟符伏俘服浮涪福袱弗甫抚辅",
    "俯釜斧脯腑府腐赴副覆赋复傅付阜父腹负富讣附妇缚咐噶嘎该改概钙盖溉干甘杆柑竿肝赶感",
    "秆敢赣冈刚钢缸肛纲岗港杠篙皋高膏羔糕搞镐稿告哥歌搁戈鸽胳疙割革葛格蛤阁隔铬个各给",
    "根跟耕更庚羹埂耿梗工攻功恭龚供躬公宫弓巩汞拱贡共钩勾沟苟狗垢构购够辜菇咕箍估沽孤",
    "姑鼓古蛊骨谷股故顾固雇刮瓜剐寡挂褂乖拐怪棺关官冠观管馆罐惯灌贯光广逛瑰规圭硅归龟",
    "闺轨鬼诡癸桂柜跪贵刽辊滚棍锅郭国果裹过哈骸孩海氦亥害骇酣憨邯韩含涵寒函喊罕翰撼捍",
    "旱憾悍焊汗汉夯杭航壕嚎豪毫郝好耗号浩呵喝荷菏核禾和何合盒貉阂河涸赫褐鹤贺嘿黑痕很",
    "狠恨哼亨横衡恒轰哄烘虹鸿洪宏弘红喉侯猴吼厚候后呼乎忽瑚壶葫胡蝴狐糊湖弧虎唬护互沪",
    "户花哗华猾滑画划化话槐徊怀淮坏欢环桓还缓换患唤痪豢焕涣宦幻荒慌黄磺蝗簧皇凰惶煌晃",
    "幌恍谎灰挥辉徽恢蛔回毁悔慧卉惠晦贿秽会烩汇讳诲绘荤昏婚魂浑混豁活伙火获或惑霍货祸",
    "击圾基机畸稽积箕肌饥迹激讥鸡姬绩缉吉极棘辑籍集及急疾汲即嫉级挤几脊己蓟技冀季伎祭",
    "剂悸济寄寂计记既忌际妓继纪嘉枷夹佳家加荚颊贾甲钾假稼价架驾嫁歼监坚尖笺间煎兼肩艰",
    "奸缄茧检柬碱硷拣捡简俭剪减荐槛鉴践贱见键箭件健舰剑饯渐溅涧建僵姜将浆江疆蒋桨奖讲",
    "匠酱降蕉椒礁焦胶交郊浇骄娇嚼搅铰矫侥脚狡角饺缴绞剿教酵轿较叫窖揭接皆秸街阶截劫节",
    "桔杰捷睫竭洁结解姐戒藉芥界借介疥诫届巾筋斤金今津襟紧锦仅谨进靳晋禁近烬浸尽劲荆兢",
    "茎睛晶鲸京惊精粳经井警景颈静境敬镜径痉靖竟竞净炯窘揪究纠玖韭久灸九酒厩救旧臼舅咎",
    "就疚鞠拘狙疽居驹菊局咀矩举沮聚拒据巨具距踞锯俱句惧炬剧捐鹃娟倦眷卷绢撅攫抉掘倔爵",
    "觉决诀绝均菌钧军君峻俊竣浚郡骏喀咖卡咯开揩楷凯慨刊堪勘坎砍看康慷糠扛抗亢炕考拷烤",
    "靠坷苛柯棵磕颗科壳咳可渴克刻客课肯啃垦恳坑吭空恐孔控抠口扣寇枯哭窟苦酷库裤夸垮挎",
    "跨胯块筷侩快宽款匡筐狂框矿眶旷况亏盔岿窥葵奎魁傀馈愧溃坤昆捆困括扩廓阔垃拉喇蜡腊",
    "辣啦莱来赖蓝婪栏拦篮阑兰澜谰揽览懒缆烂滥琅榔狼廊郎朗浪捞劳牢老佬姥酪烙涝勒乐雷镭",
    "蕾磊累儡垒擂肋类泪棱楞冷厘梨犁黎篱狸离漓理李里鲤礼莉荔吏栗丽厉励砾历利傈例俐痢立",
    "粒沥隶力璃哩俩联莲连镰廉怜涟帘敛脸链恋炼练粮凉梁粱良两辆量晾亮谅撩聊僚疗燎寥辽潦",
    "了撂镣廖料列裂烈劣猎琳林磷霖临邻鳞淋凛赁吝拎玲菱零龄铃伶羚凌灵陵岭领另令溜琉榴硫",
    "馏留刘瘤流柳六龙聋咙笼窿隆垄拢陇楼娄搂篓漏陋芦卢颅庐炉掳卤虏鲁麓碌露路赂鹿潞禄录",
    "陆戮驴吕铝侣旅履屡缕虑氯律率滤绿峦挛孪滦卵乱掠略抡轮伦仑沦纶论萝螺罗逻锣箩骡裸落",
    "洛骆络妈麻玛码蚂马骂嘛吗埋买麦卖迈脉瞒馒蛮满蔓曼慢漫谩芒茫盲氓忙莽猫茅锚毛矛铆卯",
    "茂冒帽貌贸么玫枚梅酶霉煤没眉媒镁每美昧寐妹媚门闷们萌蒙檬盟锰猛梦孟眯醚靡糜迷谜弥",
    "米秘觅泌蜜密幂棉眠绵冕免勉娩缅面苗描瞄藐秒渺庙妙蔑灭民抿皿敏悯闽明螟鸣铭名命谬摸",
    "摹蘑模膜磨摩魔抹末莫墨默沫漠寞陌谋牟某拇牡亩姆母墓暮幕募慕木目睦牧穆拿哪呐钠那娜",
    "纳氖乃奶耐奈南男难囊挠脑恼闹淖呢馁内嫩能妮霓倪泥尼拟你匿腻逆溺蔫拈年碾撵捻念娘酿",
    "鸟尿捏聂孽啮镊镍涅您柠狞凝宁拧泞牛扭钮纽脓浓农弄奴努怒女暖虐疟挪懦糯诺哦欧鸥殴藕",
    "呕偶沤啪趴爬帕怕琶拍排牌徘湃派攀潘盘磐盼畔判叛乓庞旁耪胖抛咆刨炮袍跑泡呸胚培裴赔",
    "陪配佩沛喷盆砰抨烹澎彭蓬棚硼篷膨朋鹏捧碰坯砒霹批披劈琵毗啤脾疲皮匹痞僻屁譬篇偏片",
    "骗飘漂瓢票撇瞥拼频贫品聘乒坪苹萍平凭瓶评屏坡泼颇婆破魄迫粕剖扑铺仆莆葡菩蒲埔朴圃",
    "普浦谱曝瀑期欺栖戚妻七凄漆柒沏其棋奇歧畦崎脐齐旗祈祁骑起岂乞企启契砌器气迄弃汽泣",
    "讫掐恰洽牵扦钎铅千迁签仟谦乾黔钱钳前潜遣浅谴堑嵌欠歉枪呛腔羌墙蔷强抢橇锹敲悄桥瞧",
    "乔侨巧鞘撬翘峭俏窍切茄且怯窃钦侵亲秦琴勤芹擒禽寝沁青轻氢倾卿清擎晴氰情顷请庆琼穷",
    "秋丘邱球求囚酋泅趋区蛆曲躯屈驱渠取娶龋趣去圈颧权醛泉全痊拳犬券劝缺炔瘸却鹊榷确雀",
    "裙群然燃冉染瓤壤攘嚷让饶扰绕惹热壬仁人忍韧任认刃妊纫扔仍日戎茸蓉荣融熔溶容绒冗揉",
    "柔肉茹蠕儒孺如辱乳汝入褥软阮蕊瑞锐闰润若弱撒洒萨腮鳃塞赛三叁伞散桑嗓丧搔骚扫嫂瑟",
    "色涩森僧莎砂杀刹沙纱傻啥煞筛晒珊苫杉山删煽衫闪陕擅赡膳善汕扇缮墒伤商赏晌上尚裳梢",
    "捎稍烧芍勺韶少哨邵绍奢赊蛇舌舍赦摄射慑涉社设砷申呻伸身深娠绅神沈审婶甚肾慎渗声生",
    "甥牲升绳省盛剩胜圣师失狮施湿诗尸虱十石拾时什食蚀实识史矢使屎驶始式示士世柿事拭誓",
    "逝势是嗜噬适仕侍释饰氏市恃室视试收手首守寿授售受瘦兽蔬枢梳殊抒输叔舒淑疏书赎孰熟",
    "薯暑曙署蜀黍鼠属术述树束戍竖墅庶数漱恕刷耍摔衰甩帅栓拴霜双爽谁水睡税吮瞬顺舜说硕",
    "朔烁斯撕嘶思私司丝死肆寺嗣四伺似饲巳松耸怂颂送宋讼诵搜艘擞嗽苏酥俗素速粟僳塑溯宿",
    "诉肃酸蒜算虽隋随绥髓碎岁穗遂隧祟孙损笋蓑梭唆缩琐索锁所塌他它她塔獭挞蹋踏胎苔抬台",
    "泰酞太态汰坍摊贪瘫滩坛檀痰潭谭谈坦毯袒碳探叹炭汤塘搪堂棠膛唐糖倘躺淌趟烫掏涛滔绦",
    "萄桃逃淘陶讨套特藤腾疼誊梯剔踢锑提题蹄啼体替嚏惕涕剃屉天添填田甜恬舔腆挑条迢眺跳",
    "贴铁帖厅听烃汀廷停亭庭挺艇通桐酮瞳同铜彤童桶捅筒统痛偷投头透凸秃突图徒途涂屠土吐",
    "兔湍团推颓腿蜕褪退吞屯臀拖托脱鸵陀驮驼椭妥拓唾挖哇蛙洼娃瓦袜歪外豌弯湾玩顽丸烷完",
    "碗挽晚皖惋宛婉万腕汪王亡枉网往旺望忘妄威巍微危韦违桅围唯惟为潍维苇萎委伟伪尾纬未",
    "蔚味畏胃喂魏位渭谓尉慰卫瘟温蚊文闻纹吻稳紊问嗡翁瓮挝蜗涡窝我斡卧握沃巫呜钨乌污诬",
    "屋无芜梧吾吴毋武五捂午舞伍侮坞戊雾晤物勿务悟误昔熙析西硒矽晰嘻吸锡牺稀息希悉膝夕",
    "惜熄烯溪汐犀檄袭席习媳喜铣洗系隙戏细瞎虾匣霞辖暇峡侠狭下厦夏吓掀锨先仙鲜纤咸贤衔",
    "舷闲涎弦嫌显险现献县腺馅羡宪陷限线相厢镶香箱襄湘乡翔祥详想响享项巷橡像向象萧硝霄",
    "削哮嚣销消宵淆晓小孝校肖啸笑效楔些歇蝎鞋协挟携邪斜胁谐写械卸蟹懈泄泻谢屑薪芯锌欣",
    "辛新忻心信衅星腥猩惺兴刑型形邢行醒幸杏性姓兄凶胸匈汹雄熊休修羞朽嗅锈秀袖绣墟戌需",
    "虚嘘须徐许蓄酗叙旭序畜恤絮婿绪续轩喧宣悬旋玄选癣眩绚靴薛学穴雪血勋熏循旬询寻驯巡",
    "殉汛训讯逊迅压押鸦鸭呀丫芽牙蚜崖衙涯雅哑亚讶焉咽阉烟淹盐严研蜒岩延言颜阎炎沿奄掩",
    "眼衍演艳堰燕厌砚雁唁彦焰宴谚验殃央鸯秧杨扬佯疡羊洋阳氧仰痒养样漾邀腰妖瑶摇尧遥窑",
    "谣姚咬舀药要耀椰噎耶爷野冶也页掖业叶曳腋夜液一壹医揖铱依伊衣颐夷遗移仪胰疑沂宜姨",
    "彝椅蚁倚已乙矣以艺抑易邑屹亿役臆逸肄疫亦裔意毅忆义益溢诣议谊译异翼翌绎茵荫因殷音",
    "阴姻吟银淫寅饮尹引隐印英樱婴鹰应缨莹萤营荧蝇迎赢盈影颖硬映哟拥佣臃痈庸雍踊蛹咏泳",
    "涌永恿勇用幽优悠忧尤由邮铀犹油游酉有友右佑釉诱又幼迂淤于盂榆虞愚舆余俞逾鱼愉渝渔",
    "隅予娱雨与屿禹宇语羽玉域芋郁吁遇喻峪御愈欲狱育誉浴寓裕预豫驭鸳渊冤元垣袁原援辕园",
    "员圆猿源缘远苑愿怨院曰约越跃钥岳粤月悦阅耘云郧匀陨允运蕴酝晕韵孕匝砸杂栽哉灾宰载",
    "再在咱攒暂赞赃脏葬遭糟凿藻枣早澡蚤躁噪造皂灶燥责择则泽贼怎增憎曾赠扎喳渣札轧铡闸",
    "眨栅榨咋乍炸诈摘斋宅窄债寨瞻毡詹粘沾盏斩辗崭展蘸栈占战站湛绽樟章彰漳张掌涨杖丈帐",
    "账仗胀瘴障招昭找沼赵照罩兆肇召遮折哲蛰辙者锗蔗这浙珍斟真甄砧臻贞针侦枕疹诊震振镇",
    "阵蒸挣睁征狰争怔整拯正政帧症郑证芝枝支吱蜘知肢脂汁之织职直植殖执值侄址指止趾只旨",
    "纸志挚掷至致置帜峙制智秩稚质炙痔滞治窒中盅忠钟衷终种肿重仲众舟周州洲诌粥轴肘帚咒",
    "皱宙昼骤珠株蛛朱猪诸诛逐竹烛煮拄瞩嘱主著柱助蛀贮铸筑住注祝驻抓爪拽专砖转撰赚篆桩",
    "庄装妆撞壮状椎锥追赘坠缀谆准捉拙卓桌琢茁酌啄着灼浊兹咨资姿滋淄孜紫仔籽滓子自渍字",
    "鬃棕踪宗综总纵邹走奏揍租足卒族祖诅阻组钻纂嘴醉最罪尊遵昨左佐柞做作坐座",
);

/// A small pool for the dense (adversarial) vocabulary: every pair of these characters starts
/// some keyword, so the automaton never rests near its root.
const POOL: &str = "东南西北中华新建明光安和平兴隆盛昌泰丰富康宁德顺发达祥瑞金银山水河湖海江林森石岩\
    花园城镇村街道路桥园区港湾台阁楼庄屯堡寨坊里巷营关口坝湾洲岛峰岭谷溪泉源清秀美丽春夏秋冬\
    红黄蓝绿白青紫天地日月星云风雨雪霜龙凤虎鹤鹿松柏竹梅兰菊荷桃李杏梨枫杨柳槐桂樟榆桑枣";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Unique words, none inside another (so no generated rule makes another unreachable).
struct Words {
    pool: Vec<char>,
    lengths: (usize, usize),
    used: HashSet<String>,
    /// Every substring (two characters or more) of every word handed out.
    inside: HashSet<String>,
    rng: Rng,
}

impl Words {
    fn new(dense: bool, seed: u64) -> Words {
        let (pool, lengths) = if dense {
            (POOL, (3, 3))
        } else {
            (COMMON, (2, 4))
        };
        Words {
            pool: pool.chars().filter(|c| !c.is_whitespace()).collect(),
            lengths,
            used: HashSet::new(),
            inside: HashSet::new(),
            rng: Rng(seed),
        }
    }

    fn word(&mut self) -> String {
        loop {
            let (lo, hi) = self.lengths;
            let n = lo + self.rng.below(hi - lo + 1);
            let w: Vec<char> = (0..n)
                .map(|_| self.pool[self.rng.below(self.pool.len())])
                .collect();
            let word: String = w.iter().collect();
            if self.inside.contains(&word) {
                continue;
            }
            let subs: Vec<String> = (0..n)
                .flat_map(|a| (a + 2..=n).map(move |b| (a, b)))
                .map(|(a, b)| w[a..b].iter().collect())
                .collect();
            if subs.iter().any(|s| self.used.contains(s)) {
                continue;
            }
            self.inside.extend(subs);
            self.used.insert(word.clone());
            return word;
        }
    }
}

fn quoted(ws: &[String]) -> String {
    ws.iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A rules file with `n` generated rules and the default; and, per rule, a word that
/// triggers it (for the texts).
fn generate_rules(n: usize, dense: bool, seed: u64) -> (String, Vec<String>) {
    let mut words = Words::new(dense, seed);
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(n * 120);
    let mut triggers = Vec::with_capacity(n);
    for i in 0..n {
        let lead = DEPARTMENTS[rng.below(DEPARTMENTS.len())];
        out.push_str(&format!("[[rule]]\nid = \"gen-{i:05}\"\n"));
        let kind = rng.below(200);
        let continue_ = rng.below(20) == 0;
        match kind {
            // keywords_all
            0..=7 => {
                let ws = [words.word(), words.word()];
                out.push_str(&format!("when.keywords_all = [{}]\n", quoted(&ws)));
                triggers.push(format!("{}和{}", ws[0], ws[1]));
            }
            // keywords_any + keywords_none
            8..=13 => {
                let any = [words.word(), words.word()];
                let none = [words.word()];
                out.push_str(&format!(
                    "when.keywords_any = [{}]\nwhen.keywords_none = [{}]\n",
                    quoted(&any),
                    quoted(&none)
                ));
                triggers.push(any[0].clone());
            }
            // channel + keywords_any
            14..=17 => {
                let any = [words.word()];
                let ch = ["hotline", "portal", "letter"][rng.below(3)];
                out.push_str(&format!(
                    "when.channel = [\"{ch}\"]\nwhen.keywords_any = [{}]\n",
                    quoted(&any)
                ));
                triggers.push(any[0].clone());
            }
            // regex + keywords_any (the regex runs only when the keyword is found)
            18 => {
                let any = [words.word()];
                out.push_str(&format!(
                    "when.keywords_any = [{}]\nwhen.regex = ['{}\\d+']\n",
                    quoted(&any),
                    any[0]
                ));
                triggers.push(format!("{}12", any[0]));
            }
            // no keyword: service code + region (a candidate for every item)
            19 => {
                out.push_str(&format!(
                    "when.service_code = [\"G{i}\"]\nwhen.region = [\"{}*\"]\n",
                    words.word()
                ));
                triggers.push(String::new());
            }
            // keywords_any of one to three words
            _ => {
                let k = 1 + rng.below(3);
                let any: Vec<String> = (0..k).map(|_| words.word()).collect();
                out.push_str(&format!("when.keywords_any = [{}]\n", quoted(&any)));
                triggers.push(any[rng.below(k)].clone());
            }
        }
        if continue_ {
            out.push_str(&format!(
                "then.tags = [\"t{}\"]\nthen.continue = true\n\n",
                i % 50
            ));
        } else {
            out.push_str(&format!("then.lead = \"{lead}\"\n\n"));
        }
    }
    out.push_str("[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n");
    (out, triggers)
}

/// Corpus petitions, concatenated and cut to about `bytes`, with rule words sprinkled in.
fn generate_texts(
    corpus: &[String],
    triggers: &[String],
    count: usize,
    bytes: usize,
    seed: u64,
) -> Vec<String> {
    let mut rng = Rng(seed);
    let usable: Vec<&String> = triggers.iter().filter(|t| !t.is_empty()).collect();
    (0..count)
        .map(|_| {
            let mut t = String::with_capacity(bytes + 256);
            let hits = match rng.below(4) {
                0 => 0,
                1 => 1,
                2 => 2,
                _ => 3,
            };
            let mut inserted = 0;
            while t.len() < bytes {
                t.push_str(&corpus[rng.below(corpus.len())]);
                if inserted < hits && !usable.is_empty() && rng.below(2) == 0 {
                    t.push_str(usable[rng.below(usable.len())]);
                    t.push('。');
                    inserted += 1;
                }
            }
            t
        })
        .collect()
}

fn corpus_contents(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("tests/fixtures/routing/corpus.toml"))
        .expect("corpus file");
    let doc: toml_edit::DocumentMut = text.parse().expect("corpus TOML");
    doc["case"]
        .as_array_of_tables()
        .expect("[[case]]")
        .iter()
        .filter_map(|c| c.get("content").and_then(|v| v.as_str()).map(String::from))
        .collect()
}

fn dictionary_files(root: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(root.join("config/dictionaries"))
        .expect("dictionaries")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).expect("dictionary");
            (p.display().to_string(), t)
        })
        .collect();
    files.sort();
    files
}

fn input(text: &str, i: usize) -> Input<'_> {
    Input {
        channel: [Channel::Hotline, Channel::Portal, Channel::Letter][i % 3],
        title: "",
        content: text,
        service_code: match i % 5 {
            0 => Some("SB01"),
            _ => None,
        },
        region: match i % 7 {
            0 => Some("经开区"),
            _ => None,
        },
        attachments: i % 2,
        repeat_petition: matches!(i % 11, 0),
    }
}

/// Runs `f` over the items in five rounds of `secs / 5` (each at least one pass of 64
/// items); returns (items, elapsed) of the fastest round and the median ns/item. On a shared
/// machine the fastest round is the least disturbed one.
fn measure(
    items: &[String],
    secs: f64,
    mut f: impl FnMut(&Input<'_>) -> usize,
) -> ((u64, Duration), f64) {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let budget = Duration::from_secs_f64(secs / 5.0);
        let start = Instant::now();
        let mut n = 0u64;
        'round: loop {
            for (i, t) in items.iter().enumerate() {
                black_box(f(&input(t, i)));
                n += 1;
                if n & 63 == 0 && start.elapsed() >= budget {
                    break 'round;
                }
            }
            if start.elapsed() >= budget {
                break;
            }
        }
        rounds.push((n, start.elapsed()));
    }
    let per = |r: &(u64, Duration)| r.1.as_nanos() as f64 / r.0 as f64;
    rounds.sort_by(|a, b| per(a).total_cmp(&per(b)));
    (rounds[0], per(&rounds[2]))
}

fn report(label: &str, (best, median): ((u64, Duration), f64)) -> f64 {
    let (n, d) = best;
    let per = d.as_nanos() as f64 / n as f64;
    let rate = 1e9 / per;
    println!(
        "  {label:<34} {rate:>10.0} items/s {per:>9.0} ns/item  (median round {median:.0} ns/item)"
    );
    rate
}

/// Where the time goes: normalise + encode alone, finding every keyword (encode, filter,
/// anchored automaton walks), and the whole decision.
fn breakdown(rs: &RuleSet, texts: &[String], secs: f64) {
    use petitiond::routing::classify::Matcher;
    let mut keywords: Vec<String> = rs.dictionaries().patterns().to_vec();
    let mut seen: HashSet<String> = keywords.iter().cloned().collect();
    for r in rs.rules() {
        for k in r
            .when
            .keywords_any
            .iter()
            .chain(&r.when.keywords_all)
            .chain(&r.when.keywords_none)
        {
            if seen.insert(k.normalized.clone()) {
                keywords.push(k.normalized.clone());
            }
        }
    }
    let t0 = Instant::now();
    let dict = rs.dictionaries().patterns().len();
    let matcher = Matcher::new(&keywords, &[dict, keywords.len()]).unwrap();
    let alphabet = matcher.alphabet();
    let built = t0.elapsed();
    let avg = texts
        .iter()
        .map(|t| {
            let mut v = Vec::new();
            alphabet.codes_item("", t, &mut v);
            v.len()
        })
        .sum::<usize>()
        / texts.len();
    println!(
        "  breakdown: text avg {avg} codes; automaton {} KB, built in {} ms",
        matcher.automaton_bytes() >> 10,
        built.as_millis()
    );
    report(
        "  normalise to codes",
        measure(texts, secs, |i| {
            let mut v = Vec::new();
            alphabet.codes_item(i.title, i.content, &mut v);
            v.len()
        }),
    );
    report(
        "  find every keyword",
        measure(texts, secs, |i| {
            let mut n = 0;
            matcher.find(i.title, i.content, |_, _, _| n += 1);
            n
        }),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it as a quick smoke test.
    let smoke = std::env::args().all(|a| a != "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sizes: Vec<usize> = std::env::var("ROUTING_BENCH_SIZES")
        .unwrap_or_else(|_| if smoke { "10,1000" } else { "10,1000,10000" }.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let (secs, naive_secs) = if smoke {
        (0.05, 0.05)
    } else {
        (
            env_f64("ROUTING_BENCH_SECS", 2.0),
            env_f64("ROUTING_BENCH_NAIVE_SECS", 2.0),
        )
    };
    let count = env_usize("ROUTING_BENCH_ITEMS", 256).max(1);
    let detail = env_usize("ROUTING_BENCH_DETAIL", 0) == 1;
    let dense = std::env::var("ROUTING_BENCH_VOCAB").is_ok_and(|v| v == "dense");
    let bytes = env_usize("ROUTING_BENCH_TEXT_BYTES", 2048);
    let corpus = corpus_contents(root);
    let dicts = dictionary_files(root);
    let model = Model::load(&root.join("config/model/classifier.bin")).expect("shipped model");

    println!(
        "routing bench: {count} texts of ~{bytes} bytes, single thread, {secs}s per fast measurement, {} vocabulary",
        if dense {
            "dense (124 characters, 3-character words)"
        } else {
            "common (3,755 characters, 2-4-character words)"
        }
    );
    for &n in &sizes {
        let (rules, triggers) = generate_rules(n, dense, 0x5eed + n as u64);
        let t0 = Instant::now();
        let (rs, warnings) = match RuleSet::parse("generated.toml", &rules, &dicts, &DEPARTMENTS) {
            Ok(ok) => ok,
            Err(e) => panic!("generated rules do not validate:\n{e}"),
        };
        let load = t0.elapsed();
        let texts = generate_texts(&corpus, &triggers, count, bytes, 0xfeed + n as u64);
        let avg = texts.iter().map(String::len).sum::<usize>() / texts.len();
        println!(
            "\n{n} rules: {} distinct keywords, loaded and validated in {:.1} ms ({} warnings), texts avg {avg} bytes",
            rs.pattern_count(),
            load.as_secs_f64() * 1e3,
            warnings.len()
        );
        // The fast path and the baseline agree before either is timed.
        for (i, t) in texts.iter().enumerate().take(32) {
            assert_eq!(rs.decide(&input(t, i)), rs.decide_naive(&input(t, i)));
        }
        let hits = texts
            .iter()
            .enumerate()
            .filter(|(i, t)| rs.decide(&input(t, *i)).rule_id.starts_with("gen-"))
            .count();
        println!("  items decided by a generated rule: {hits}/{count}");
        measure(&texts, secs.min(0.2), |i| rs.decide(i).assists.len()); // warm-up
        let plain = report(
            "decide, dictionaries only",
            measure(&texts, secs, |i| rs.decide(i).assists.len()),
        );
        let rs = rs.with_model(Some(model.clone()), 0.6);
        for (i, t) in texts.iter().enumerate().take(32) {
            assert_eq!(rs.decide(&input(t, i)), rs.decide_naive(&input(t, i)));
        }
        measure(&texts, secs.min(0.2), |i| rs.decide(i).assists.len()); // warm-up
        let fast = report(
            "decide, dictionaries + model",
            measure(&texts, secs, |i| rs.decide(i).assists.len()),
        );
        println!("  the model costs {:.0} ns/item", 1e9 / fast - 1e9 / plain);
        if naive_secs > 0.0 {
            let naive = report(
                "naive baseline (str::contains)",
                measure(&texts, naive_secs, |i| rs.decide_naive(i).assists.len()),
            );
            println!("  speed-up: {:.1}x", fast / naive);
        }
        if detail {
            breakdown(&rs, &texts, secs);
        }
        if n >= 10_000 {
            let verdict = if fast >= 100_000.0 { "met" } else { "NOT met" };
            println!("  target ≥ 100,000 items/s at {n} rules, model on: {verdict}");
        }
    }
}
