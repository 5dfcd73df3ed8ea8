// Hand-collected facts about Seoul's 25 districts for the demo registry: where
// demo sites may be placed, which police station answers there and which roads
// their addresses may use. Points are WGS84 and deliberately sit well away from
// district borders, so a jittered site never lands in the neighbouring district.
import type { District } from '../../protocol/schemas.ts';

export interface Anchor {
  /** Neighbourhood or landmark; becomes part of a store's branch name. */
  name: string;
  lat: number;
  lon: number;
  /** Sites are scattered up to this many metres from the anchor, staying inside the district. */
  radiusM: number;
  /** The Seoul Metropolitan Police Agency station whose jurisdiction covers the anchor's disc. */
  policeStation: string;
}

export interface DistrictData {
  /** Resident population in thousands (rounded, early 2020s); sites are apportioned by it. */
  weight: number;
  policeStations: readonly string[];
  anchors: readonly Anchor[];
  /** Road-name-address roads (도로명) that run through the district. */
  roads: readonly string[];
}

/** One area code covers the whole city, so landlines never reveal the district. */
export const SEOUL_AREA_CODE = '02';

function anchor(name: string, lat: number, lon: number, radiusM: number, policeStation: string): Anchor {
  return { name, lat, lon, radiusM, policeStation };
}

/** Districts served by a single station need no per-anchor choice. */
function singleStation(
  policeStation: string,
  weight: number,
  anchors: ReadonlyArray<[name: string, lat: number, lon: number, radiusM: number]>,
  roads: readonly string[],
): DistrictData {
  return {
    weight,
    policeStations: [policeStation],
    anchors: anchors.map(([name, lat, lon, radiusM]) => anchor(name, lat, lon, radiusM, policeStation)),
    roads,
  };
}

const JONGNO = 'Jongno Police Station';
const HYEHWA = 'Hyehwa Police Station';
const JUNGBU = 'Jung-bu Police Station';
const NAMDAEMUN = 'Namdaemun Police Station';
const SEONGBUK = 'Seongbuk Police Station';
const JONGAM = 'Jongam Police Station';
const EUNPYEONG = 'Eunpyeong Police Station';
const SEOBU = 'Seobu Police Station';
const SEOCHO = 'Seocho Police Station';
const BANPO = 'Banpo Police Station';
// Gangnam Police Station covers Gangnam-gu north of Teheran-ro, Suseo the south.
const GANGNAM = 'Gangnam Police Station';
const SUSEO = 'Suseo Police Station';

export const DISTRICT_DATA: Readonly<Record<District, DistrictData>> = {
  'Jongno-gu': {
    weight: 141,
    policeStations: [JONGNO, HYEHWA],
    anchors: [
      anchor('Gwanghwamun', 37.5745, 126.9772, 200, JONGNO),
      anchor('Insadong', 37.5738, 126.9858, 200, JONGNO),
      anchor('Samcheong-dong', 37.5830, 126.9818, 250, JONGNO),
      anchor('Daehangno', 37.5820, 127.0018, 250, HYEHWA),
      anchor('Changsin', 37.5730, 127.0130, 250, HYEHWA),
    ],
    roads: ['Jong-ro', 'Sejong-daero', 'Yulgok-ro', 'Daehak-ro', 'Changgyeonggung-ro', 'Saemunan-ro', 'Jahamun-ro', 'Bukchon-ro'],
  },
  'Jung-gu': {
    weight: 121,
    policeStations: [JUNGBU, NAMDAEMUN],
    anchors: [
      anchor('Myeong-dong', 37.5630, 126.9852, 200, NAMDAEMUN),
      anchor('Namdaemun Market', 37.5592, 126.9772, 150, NAMDAEMUN),
      anchor('Chungmuro', 37.5612, 126.9942, 200, JUNGBU),
      anchor('Jangchung', 37.5595, 127.0040, 250, JUNGBU),
      anchor('Sindang', 37.5630, 127.0150, 200, JUNGBU),
      anchor('Dongdaemun History & Culture Park', 37.5645, 127.0090, 150, JUNGBU),
    ],
    roads: ['Eulji-ro', 'Toegye-ro', 'Namdaemun-ro', 'Sogong-ro', 'Dasan-ro', 'Jangchungdan-ro', 'Mareunnae-ro', 'Myeongdong-gil'],
  },
  'Yongsan-gu': singleStation('Yongsan Police Station', 217, [
    ['Itaewon', 37.5345, 126.9945, 250],
    ['Yongsan Station', 37.5300, 126.9655, 250],
    ['Ichon', 37.5230, 126.9710, 200],
    ['Hannam', 37.5345, 127.0060, 250],
    ['Sookmyung Women\'s University', 37.5450, 126.9718, 200],
  ], ['Itaewon-ro', 'Hangang-daero', 'Noksapyeong-daero', 'Wonhyo-ro', 'Ichon-ro', 'Hoenamu-ro', 'Huam-ro', 'Cheongpa-ro']),
  'Seongdong-gu': singleStation('Seongdong Police Station', 281, [
    ['Wangsimni', 37.5612, 127.0373, 250],
    ['Seongsu', 37.5445, 127.0560, 300],
    ['Seoul Forest', 37.5475, 127.0440, 200],
    ['Haengdang', 37.5575, 127.0295, 150],
    ['Geumho', 37.5480, 127.0210, 200],
    ['Majang', 37.5660, 127.0430, 200],
  ], ['Wangsimni-ro', 'Seongsui-ro', 'Ttukseom-ro', 'Gosanja-ro', 'Majang-ro', 'Dokseodang-ro', 'Achasan-ro', 'Cheonho-daero']),
  'Gwangjin-gu': singleStation('Gwangjin Police Station', 335, [
    ['Konkuk University', 37.5405, 127.0700, 150],
    ['Guui', 37.5385, 127.0860, 250],
    ['Gunja', 37.5570, 127.0795, 200],
    ['Children\'s Grand Park', 37.5480, 127.0750, 200],
    ['Gwangnaru', 37.5455, 127.1040, 250],
  ], ['Neungdong-ro', 'Achasan-ro', 'Gwangnaru-ro', 'Jayang-ro', 'Cheonho-daero', 'Dongil-ro', 'Gucheonmyeon-ro', 'Ttukseom-ro']),
  'Dongdaemun-gu': singleStation('Dongdaemun Police Station', 342, [
    ['Cheongnyangni', 37.5800, 127.0460, 250],
    ['Hoegi', 37.5895, 127.0570, 250],
    ['Jangan', 37.5710, 127.0700, 250],
    ['Imun', 37.5950, 127.0620, 250],
    ['Dapsimni', 37.5710, 127.0550, 200],
    ['Jegi-dong', 37.5810, 127.0385, 200],
  ], ['Wangsan-ro', 'Cheonho-daero', 'Hoegi-ro', 'Imun-ro', 'Dapsimni-ro', 'Sagajeong-ro', 'Jeonnong-ro']),
  'Jungnang-gu': singleStation('Jungnang Police Station', 385, [
    ['Sangbong', 37.5965, 127.0855, 250],
    ['Myeonmok', 37.5880, 127.0870, 250],
    ['Junghwa', 37.6020, 127.0790, 250],
    ['Mangu', 37.5990, 127.0920, 250],
    ['Muk-dong', 37.6100, 127.0790, 250],
  ], ['Mangu-ro', 'Dongil-ro', 'Sangbong-ro', 'Myeonmok-ro', 'Bonghwasan-ro', 'Yongmasan-ro', 'Sagajeong-ro']),
  'Seongbuk-gu': {
    weight: 435,
    policeStations: [SEONGBUK, JONGAM],
    anchors: [
      anchor('Sungshin Women\'s University', 37.5926, 127.0165, 250, SEONGBUK),
      anchor('Hansung University', 37.5890, 127.0064, 150, SEONGBUK),
      anchor('Jeongneung', 37.6025, 127.0130, 200, SEONGBUK),
      anchor('Anam', 37.5860, 127.0290, 200, JONGAM),
      anchor('Wolgok', 37.6020, 127.0415, 200, JONGAM),
      anchor('Jangwi', 37.6120, 127.0460, 200, JONGAM),
    ],
    roads: ['Dongsomun-ro', 'Bomun-ro', 'Seongbuk-ro', 'Jongam-ro', 'Hwarang-ro', 'Anam-ro', 'Jeongneung-ro'],
  },
  'Gangbuk-gu': singleStation('Gangbuk Police Station', 289, [
    ['Suyu', 37.6380, 127.0255, 250],
    ['Mia Sageori', 37.6140, 127.0300, 200],
    ['Mia', 37.6262, 127.0260, 250],
    ['Beon-dong', 37.6250, 127.0380, 250],
    ['Solsaem', 37.6210, 127.0130, 150],
  ], ['Dobong-ro', 'Samyang-ro', 'Solmae-ro', 'Hancheon-ro', 'Ohyeon-ro', 'Insubong-ro']),
  'Dobong-gu': singleStation('Dobong Police Station', 310, [
    ['Ssangmun', 37.6485, 127.0345, 250],
    ['Chang-dong', 37.6510, 127.0420, 200],
    ['Banghak', 37.6665, 127.0440, 250],
    ['Dobong Station', 37.6795, 127.0455, 200],
  ], ['Dobong-ro', 'Nohae-ro', 'Macheul-ro', 'Banghak-ro', 'Haedeung-ro']),
  'Nowon-gu': singleStation('Nowon Police Station', 500, [
    ['Nowon Station', 37.6550, 127.0615, 300],
    ['Junggye', 37.6445, 127.0640, 300],
    ['Hagye', 37.6365, 127.0680, 250],
    ['Gongneung', 37.6255, 127.0730, 250],
    ['Sanggye', 37.6610, 127.0735, 250],
    ['Kwangwoon University', 37.6235, 127.0620, 200],
  ], ['Dongil-ro', 'Nohae-ro', 'Hwarang-ro', 'Sanggye-ro', 'Deongneung-ro', 'Hangeulbiseok-ro', 'Nowon-ro']),
  'Eunpyeong-gu': {
    weight: 465,
    policeStations: [EUNPYEONG, SEOBU],
    anchors: [
      anchor('Yeonsinnae', 37.6190, 126.9210, 250, EUNPYEONG),
      anchor('Gupabal', 37.6365, 126.9190, 300, EUNPYEONG),
      anchor('Bulgwang', 37.6105, 126.9300, 200, EUNPYEONG),
      anchor('Eungam', 37.5985, 126.9155, 250, SEOBU),
      anchor('Nokbeon', 37.6010, 126.9340, 200, SEOBU),
      anchor('Jeungsan', 37.5835, 126.9095, 200, SEOBU),
    ],
    roads: ['Tongil-ro', 'Yeonseo-ro', 'Jinheung-ro', 'Eunpyeong-ro', 'Susaek-ro', 'Seooreung-ro'],
  },
  'Seodaemun-gu': singleStation('Seodaemun Police Station', 310, [
    ['Yonsei University', 37.5600, 126.9395, 200],
    ['Ewha Womans University', 37.5620, 126.9460, 200],
    ['Yeonhui', 37.5680, 126.9300, 250],
    ['Hongje', 37.5890, 126.9440, 250],
    ['Bukgajwa', 37.5770, 126.9130, 200],
  ], ['Yonsei-ro', 'Sinchon-ro', 'Tongil-ro', 'Seongsan-ro', 'Yeonhui-ro', 'Gajwa-ro', 'Chungjeong-ro']),
  'Mapo-gu': singleStation('Mapo Police Station', 372, [
    ['Hongdae', 37.5545, 126.9230, 250],
    ['Hapjeong', 37.5495, 126.9140, 250],
    ['Mangwon', 37.5560, 126.9020, 250],
    ['Gongdeok', 37.5440, 126.9510, 200],
    ['Sangam DMC', 37.5780, 126.8900, 300],
    ['Yeonnam', 37.5610, 126.9210, 200],
  ], ['World Cup-ro', 'Yanghwa-ro', 'Mapo-daero', 'Dongmak-ro', 'Wausan-ro', 'Seongmisan-ro', 'Tojeong-ro', 'Eoulmadang-ro']),
  'Yangcheon-gu': singleStation('Yangcheon Police Station', 437, [
    ['Omokgyo', 37.5245, 126.8750, 300],
    ['Sinjeong', 37.5200, 126.8540, 300],
    ['Sinwol', 37.5280, 126.8340, 250],
    ['Yangcheon-gu Office', 37.5170, 126.8665, 250],
    ['Mokdong Stadium', 37.5307, 126.8815, 250],
  ], ['Mokdong-ro', 'Mokdongdong-ro', 'Mokdongseo-ro', 'Sinjeong-ro', 'Sinwol-ro', 'Anyangcheon-ro', 'Nambusunhwan-ro']),
  'Gangseo-gu': singleStation('Gangseo Police Station', 562, [
    ['Magok', 37.5600, 126.8370, 300],
    ['Hwagok', 37.5415, 126.8405, 300],
    ['Deungchon', 37.5510, 126.8640, 200],
    ['Banghwa', 37.5760, 126.8130, 300],
    ['Gayang', 37.5615, 126.8545, 250],
  ], ['Gonghang-daero', 'Hwagok-ro', 'Yangcheon-ro', 'Deungchon-ro', 'Banghwa-daero', 'Gangseo-ro', 'Magokjungang-ro']),
  'Guro-gu': singleStation('Guro Police Station', 403, [
    ['Sindorim', 37.5060, 126.8880, 250],
    ['Guro Digital Complex', 37.4870, 126.8950, 150],
    ['Guro-gu Office', 37.4954, 126.8875, 250],
    ['Gocheok Sky Dome', 37.4982, 126.8670, 250],
    ['Gaebong', 37.4945, 126.8560, 250],
    ['Oryu-dong', 37.4945, 126.8450, 250],
  ], ['Gurodong-ro', 'Digital-ro', 'Gyeongin-ro', 'Gamasan-ro', 'Saemal-ro', 'Gurojungang-ro', 'Sindorim-ro']),
  'Geumcheon-gu': singleStation('Geumcheon Police Station', 230, [
    ['Gasan Digital Complex', 37.4775, 126.8835, 250],
    ['Doksan', 37.4700, 126.8970, 250],
    ['Siheung-dong', 37.4500, 126.9030, 250],
    ['Geumcheon-gu Office', 37.4570, 126.8955, 250],
  ], ['Siheung-daero', 'Gasan digital 1-ro', 'Beotkkot-ro', 'Doksan-ro', 'Geumha-ro', 'Digital-ro']),
  'Yeongdeungpo-gu': singleStation('Yeongdeungpo Police Station', 375, [
    ['Yeouido', 37.5215, 126.9245, 400],
    ['Yeongdeungpo Station', 37.5155, 126.9075, 250],
    ['Dangsan', 37.5340, 126.9020, 200],
    ['Mullae', 37.5180, 126.8950, 250],
    ['Singil', 37.5070, 126.9140, 250],
    ['Daerim', 37.4945, 126.9035, 200],
  ], ['Yeoui-daero', 'Gukhoe-daero', 'Yeongdeungpo-ro', 'Gyeongin-ro', 'Yeouidong-ro', 'Dorim-ro', 'Singil-ro', 'Dangsan-ro']),
  'Dongjak-gu': singleStation('Dongjak Police Station', 385, [
    ['Noryangjin', 37.5100, 126.9420, 250],
    ['Sadang', 37.4850, 126.9800, 200],
    ['Sangdo', 37.5030, 126.9480, 250],
    ['Chung-Ang University', 37.5060, 126.9600, 200],
    ['Daebang', 37.5050, 126.9320, 200],
  ], ['Sangdo-ro', 'Dongjak-daero', 'Noryangjin-ro', 'Sadang-ro', 'Yeouidaebang-ro', 'Jangseungbaegi-ro', 'Heukseok-ro']),
  'Gwanak-gu': singleStation('Gwanak Police Station', 495, [
    ['Seoul National University Station', 37.4812, 126.9527, 300],
    ['Sillim', 37.4842, 126.9295, 300],
    ['Bongcheon', 37.4825, 126.9415, 250],
    ['Nakseongdae', 37.4770, 126.9610, 250],
    ['Daehak-dong', 37.4700, 126.9370, 250],
  ], ['Gwanak-ro', 'Nambusunhwan-ro', 'Bongcheon-ro', 'Sillim-ro', 'Hoam-ro', 'Gwancheon-ro', 'Nakseongdae-ro']),
  'Seocho-gu': {
    weight: 413,
    policeStations: [SEOCHO, BANPO],
    anchors: [
      anchor('Seocho Station', 37.4918, 127.0077, 300, SEOCHO),
      anchor('Yangjae', 37.4835, 127.0300, 250, SEOCHO),
      anchor('Seoul Arts Center', 37.4790, 127.0120, 250, SEOCHO),
      anchor('Express Bus Terminal', 37.5050, 127.0050, 250, BANPO),
      anchor('Bangbae', 37.4815, 126.9975, 250, BANPO),
      anchor('Seorae Village', 37.4980, 126.9970, 200, BANPO),
    ],
    roads: ['Seocho-daero', 'Banpo-daero', 'Gangnam-daero', 'Sapyeong-daero', 'Hyoryeong-ro', 'Baumoe-ro', 'Seochojungang-ro', 'Bangbae-ro'],
  },
  'Gangnam-gu': {
    weight: 537,
    policeStations: [GANGNAM, SUSEO],
    anchors: [
      anchor('Yeoksam', 37.5035, 127.0365, 200, GANGNAM),
      anchor('Garosu-gil', 37.5210, 127.0230, 150, GANGNAM),
      anchor('COEX', 37.5118, 127.0590, 250, GANGNAM),
      anchor('Apgujeong Rodeo', 37.5270, 127.0400, 250, GANGNAM),
      anchor('Daechi', 37.4945, 127.0620, 250, SUSEO),
      anchor('Suseo', 37.4873, 127.1015, 200, SUSEO),
    ],
    roads: ['Teheran-ro', 'Gangnam-daero', 'Dosan-daero', 'Eonju-ro', 'Seolleung-ro', 'Apgujeong-ro', 'Nonhyeon-ro', 'Samseong-ro'],
  },
  'Songpa-gu': singleStation('Songpa Police Station', 656, [
    ['Jamsil Lake', 37.5080, 127.1040, 250],
    ['Garak Market', 37.4930, 127.1110, 300],
    ['Munjeong', 37.4860, 127.1220, 250],
    ['Bangi', 37.5110, 127.1190, 250],
    ['Jamsilsaenae', 37.5115, 127.0860, 250],
    ['Geoyeo', 37.4935, 127.1440, 250],
  ], ['Olympic-ro', 'Songpa-daero', 'Baekjegobun-ro', 'Jamsil-ro', 'Yangjae-daero', 'Ogeum-ro', 'Jungdae-ro', 'Wiryeseong-daero']),
  'Gangdong-gu': singleStation('Gangdong Police Station', 465, [
    ['Cheonho', 37.5400, 127.1260, 250],
    ['Gil-dong', 37.5375, 127.1405, 250],
    ['Godeok', 37.5550, 127.1540, 250],
    ['Amsa', 37.5500, 127.1275, 250],
    ['Dunchon', 37.5275, 127.1360, 250],
    ['Myeongil', 37.5515, 127.1440, 250],
  ], ['Cheonho-daero', 'Yangjae-daero', 'Olympic-ro', 'Gucheonmyeon-ro', 'Seongnae-ro', 'Sangam-ro', 'Godeok-ro', 'Jinhwangdo-ro']),
};
